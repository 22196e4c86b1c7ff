"""lite_countdown: generated rows, same prompt and checker as countdown (forgetbench.tasks.scoring.countdown)."""

try:
    import forgetbench  # noqa: F401
except ImportError:  # a bare checkout run by `lm_eval --include_path tasks` without installing
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from forgetbench.tasks.lite import standalone_dataset
from forgetbench.tasks.scoring import countdown


def dataset(**metadata):
    """Standalone lm_eval: regenerate the rows from metadata.forgetbench.sources (generator, n, seed)."""
    return standalone_dataset(**metadata)


def doc_to_text(doc: dict) -> str:
    return countdown.prompt(doc["nums"], doc["target"])


def process_results(doc: dict, results: list) -> dict:
    return {"acc": countdown.score(results[0], doc["nums"], doc["target"])}
