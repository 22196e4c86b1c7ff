"""Parse a GGUF file once per conversion instead of three times.

transformers reads a GGUF checkpoint separately for the config, the tokenizer and the weights: each
`load_gguf_checkpoint` call builds a fresh `gguf.GGUFReader` (whose field parsing is pure Python: ~6 s
for SmolLM2-135M's 49k-token vocabulary on a 2-core AVX2 CPU) and the weight loader asks
`gguf.get_tensor_name_map` for the same (architecture, layer count) once per tensor (~8 s). Both are
read-only results of their arguments, so within one conversion they are memoized. The files written are
byte-for-byte those of the unpatched path (tests/test_models.py checks the bundled model's content hash).

Simplification: the memo patches the two names on the `gguf` module, which is where transformers imports
them from at call time; if a future transformers imports them elsewhere, the conversion is merely slower.
"""

from __future__ import annotations

import contextlib
import functools


@contextlib.contextmanager
def parsed_once():
    try:
        import gguf
    except ImportError:  # transformers reports the missing package itself
        yield
        return
    reader_cls, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict = {}

    def reader(path, mode="r"):
        key = (str(path), mode)
        if key not in readers:
            readers[key] = reader_cls(path, mode)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = reader, functools.lru_cache(maxsize=8)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader_cls, name_map
        readers.clear()
