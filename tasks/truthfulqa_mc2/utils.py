"""truthfulqa_mc2: lm-eval's own scorer (normalized probability mass on the true answers)."""

from lm_eval.tasks.truthfulqa.utils import process_results_mc2 as process_results

__all__ = ["process_results"]
