"""lite_countdown: generated rows, same prompt and checker as countdown (forgetbench.tasks.scoring.countdown)."""

try:
    import forgetbench  # noqa: F401
except ImportError:  # a bare checkout run by `lm_eval --include_path tasks` without installing
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from forgetbench.tasks.lite import standalone_dataset as dataset  # custom_dataset: rows from metadata.forgetbench
from forgetbench.tasks.scoring import countdown

__all__ = ["dataset", "doc_to_text", "process_results"]


def doc_to_text(doc: dict) -> str:
    return countdown.prompt(doc["nums"], doc["target"])


def process_results(doc: dict, results: list) -> dict:
    return {"acc": countdown.score(results[0], doc["nums"], doc["target"])}
