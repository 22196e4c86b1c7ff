"""Where forgetbench keeps what it generates: converted models, materialized task data, nltk data."""

import os
from pathlib import Path


def home() -> Path:
    root = Path(os.environ.get("FORGETBENCH_HOME") or Path.home() / ".cache" / "forgetbench")
    root.mkdir(parents=True, exist_ok=True)
    return root
