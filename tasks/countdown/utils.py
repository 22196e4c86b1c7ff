"""countdown: thin lm-eval hooks around forgetbench.tasks.scoring.countdown (prompt + checker)."""

try:
    import forgetbench  # noqa: F401
except ImportError:  # a bare checkout run by `lm_eval --include_path tasks` without installing
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from forgetbench.tasks.lite import standalone_dataset
from forgetbench.tasks.scoring import countdown


def load_data(**metadata):
    """Standalone lm_eval: the held-out slice named in this task's metadata.forgetbench.sources."""
    return standalone_dataset(**metadata)


def doc_to_text(doc: dict) -> str:
    return countdown.prompt(doc["nums"], doc["target"])


def process_results(doc: dict, results: list) -> dict:
    return {"acc": countdown.score(results[0], doc["nums"], doc["target"])}
