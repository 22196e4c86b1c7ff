"""lite_refusal: generated rows, scored exactly like the safety probe (forgetbench.tasks.scoring.refusal)."""

try:
    import forgetbench  # noqa: F401
except ImportError:  # a bare checkout run by `lm_eval --include_path tasks` without installing
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from forgetbench.tasks.lite import standalone_dataset as dataset  # custom_dataset: rows from metadata.forgetbench
from forgetbench.tasks.scoring import refusal

__all__ = ["dataset", "process_results"]


def process_results(doc: dict, results: list) -> dict:
    return refusal.score(doc["prompt"], results[0], doc["kind"])
