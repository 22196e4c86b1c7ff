"""Where forgetbench keeps what it generates (converted models, materialized task data, nltk data), and
where it finds what it ships (the task registry, the site's templates, the training recipes)."""

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
DB_FILE = "forgetbench.duckdb"  # the results store's file name (`--db`; the demo's OUT/forgetbench.duckdb)
DB_ENV = "FORGETBENCH_DB"
TRAIN_RECORD = "forgetbench_train.json"  # what `forgetbench train` wrote, saved in the checkpoint folder


def home() -> Path:
    root = Path(os.environ.get("FORGETBENCH_HOME") or Path.home() / ".cache" / "forgetbench")
    root.mkdir(parents=True, exist_ok=True)
    return root


def shipped(name: str, inside: str = "") -> Path | None:
    """A folder the project ships: the checkout's top-level `name/` (tasks, leaderboard, recipes), or the
    copy a wheel carries inside the package (`_name/`); None when neither holds `inside` (if given)."""
    for cand in (PACKAGE.parent / name, PACKAGE / f"_{name}"):
        if (cand / inside).is_dir():
            return cand
    return None


def default_db() -> Path:
    """`--db` when not given: $FORGETBENCH_DB, else forgetbench.duckdb in the working folder."""
    return Path(os.environ.get(DB_ENV) or DB_FILE)
