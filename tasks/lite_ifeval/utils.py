"""lite_ifeval: generated IFEval-schema rows scored by lm-eval's own IFEval checkers.

nltk's punkt_tab is materialized offline (forgetbench/tasks/punkt.py) before lm-eval's ifeval modules are
imported, because importing them otherwise tries to download it.
"""

try:
    import forgetbench  # noqa: F401
except ImportError:  # a bare checkout run by `lm_eval --include_path tasks` without installing
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from forgetbench.tasks.lite import standalone_dataset as dataset  # custom_dataset: rows from metadata.forgetbench
from forgetbench.tasks.punkt import ensure_punkt_tab

ensure_punkt_tab()

from lm_eval.tasks.ifeval.utils import agg_inst_level_acc, process_results  # noqa: E402

__all__ = ["agg_inst_level_acc", "dataset", "process_results"]
