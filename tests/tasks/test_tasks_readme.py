"""tasks/README.md's "Adding a task" steps, run exactly as written.

Every ```bash block of that section is executed, in order, by bash in an empty folder, with
`forgetbench` being this checkout's CLI and BASE / TUNED two scripted (fake-backend) models: the
base picks the right capital on every row, the tuned one on two of four. Then the outcome is checked:
the task is listed as custom, its hash was pinned into the YAML, and the pair's gain is -0.5.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from support import REPO

README = REPO / "tasks" / "README.md"


def steps() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Adding a task", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def test_readme_has_the_steps():
    blocks = steps()
    assert len(blocks) >= 4
    assert any("forgetbench tasks hash" in b for b in blocks) and any("forgetbench eval" in b for b in blocks)


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("perl") is None, reason="needs bash and perl")
def test_following_the_readme_adds_a_task(tmp_path, fb_home):
    right = {c: i for c, i in [("France", 0), ("Japan", 1), ("Canada", 2), ("Australia", 3)]}
    cities = {"France": "Paris", "Japan": "Tokyo", "Canada": "Ottawa", "Australia": "Canberra"}
    base = {"name": "base", "choose": [{"match": f"capital of {c}?", "continuation": cities[c]} for c in right]}
    tuned = {"name": "tuned", "choose": [{"match": f"capital of {c}?", "continuation": cities[c]}
                                         for c in ("France", "Japan")]
             + [{"match": "capital of Canada?", "continuation": "Toronto"},
                {"match": "capital of Australia?", "continuation": "Sydney"}]}
    work = tmp_path / "user"
    work.mkdir()
    (tmp_path / "base.json").write_text(json.dumps(base))
    (tmp_path / "tuned.json").write_text(json.dumps(tuned))
    env = {**os.environ, "BASE": f"fake:{tmp_path / 'base.json'}", "TUNED": f"fake:{tmp_path / 'tuned.json'}",
           "PYTHONPATH": str(REPO), "FORGETBENCH_DB": str(work / "store.duckdb")}
    env.pop("FORGETBENCH_TASKS_DIRS", None)
    env.pop("FORGETBENCH_TASKS", None)
    preamble = f'set -euo pipefail\nforgetbench() {{ "{sys.executable}" -m forgetbench.cli "$@"; }}\n'
    outputs = []
    for block in steps():
        run = subprocess.run(["bash", "-c", preamble + block], cwd=work, env=env, capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, f"step failed:\n{block}\n--- stderr:\n{run.stderr[-3000:]}"
        outputs.append(run.stdout)
    listing = next(o for o in outputs if "capitals" in o and "origin" in o)
    row = next(line for line in listing.splitlines() if line.startswith("capitals"))
    assert "custom" in row and "target" in row and "mine" in row

    from forgetbench.tasks import data, registry

    yaml_text = (work / "my_tasks" / "capitals" / "capitals.yaml").read_text()
    pinned = re.search(r"data_hashes: \[([0-9a-f]{64})\]", yaml_text)
    assert pinned, yaml_text
    os.environ["FORGETBENCH_TASKS_DIRS"] = str(work / "my_tasks")
    try:
        spec = registry.get("capitals")
        assert spec.custom and spec.data_hashes == (pinned.group(1),)
        assert data.load_docs(spec).data_hash == pinned.group(1)
    finally:
        del os.environ["FORGETBENCH_TASKS_DIRS"]
    table = outputs[-1]
    assert "capitals" in table and "target" in table
    gain = re.search(r"capitals\s.*?(-50\.0)", table)
    assert gain, table
