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
import json
from pathlib import Path

from forgetbench.errors import UserError
from forgetbench.models.identity import atomic_dir, file_sha256


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


def torch_dtype(dtype: str, default: str = "bfloat16"):
    import torch

    return getattr(torch, default if dtype in (None, "auto") else dtype)


def convert_gguf(gguf: Path, cache: Path, dtype: str = "bfloat16", name: str | None = None) -> Path:
    """Dequantize a GGUF file into an HF directory once; keyed by the file's sha256 (and dtype)."""
    gguf = Path(gguf).resolve()
    save_dtype = "bfloat16" if dtype in (None, "auto") else dtype
    digest = file_sha256(gguf)
    suffix = "" if save_dtype == "bfloat16" else f"-{save_dtype}"
    dest = Path(cache) / f"{name or 'gguf'}-{digest[:12]}{suffix}"

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from forgetbench.models.gguf import parsed_once

        try:
            with parsed_once():
                tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
                model = AutoModelForCausalLM.from_pretrained(
                    gguf.parent, gguf_file=gguf.name, dtype=torch_dtype(save_dtype)
                )
        except Exception as e:  # noqa: BLE001 - transformers raises many types for bad files
            raise UserError(f"{gguf}: cannot convert this GGUF file with transformers: {e}") from e
        # The loaded model still carries the GGUF quantizer; saved as-is, transformers would try
        # to re-quantize on load. The weights are already dequantized.
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer.remove_quantization_config(model)
        model.to(torch_dtype(save_dtype))
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "forgetbench_source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": digest}))

    return atomic_dir(dest, build)
