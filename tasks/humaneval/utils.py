"""humaneval: lm-eval's program assembly and pass@1, the code run in forgetbench's sandbox
(forgetbench/tasks/scoring/humaneval.py, forgetbench/tasks/scoring/sandbox.py). Generated code runs only when
FORGETBENCH_CONFIRM_RUN_UNSAFE_CODE=1, which `forgetbench eval --confirm-run-unsafe-code` sets; a
standalone `lm_eval --include_path tasks --confirm_run_unsafe_code` run needs that variable too."""

try:
    import forgetbench  # noqa: F401
except ImportError:  # a bare checkout run by `lm_eval --include_path tasks` without installing
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from forgetbench.tasks.scoring.humaneval import build_predictions, process_results

__all__ = ["build_predictions", "process_results"]
