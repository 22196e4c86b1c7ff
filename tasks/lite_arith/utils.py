"""lite_arith: generated rows (forgetbench/tasks/lite); scoring is plain lm-eval configuration in the YAML."""

try:
    import forgetbench  # noqa: F401
except ImportError:  # a bare checkout run by `lm_eval --include_path tasks` without installing
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from forgetbench.tasks.lite import standalone_dataset as dataset  # custom_dataset: rows from metadata.forgetbench

__all__ = ["dataset"]
