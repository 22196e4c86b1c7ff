"""Entries on tasks outside the built-in registry (a --tasks-dir task as target, or --target-prompts)
go through export -> validate -> leaderboard build, and the site keeps them in their own "custom"
groups, never ranked against entries on registry tasks."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from forgetbench import cli
from forgetbench.leaderboard import export, site
from forgetbench.tasks import registry
from forgetbench.leaderboard.build import build
from forgetbench.tasks.target_prompts import load as load_prompts
from forgetbench.leaderboard.validate import INVALID, validate_entries
from support import FIXTURES

FILLED = {"title": "custom fixture", "method": "sft", "training_data": "none", "compute": "cpu", "contact": "me",
          "licence": "Apache-2.0"}
TASK_YAML = """task: capitals
dataset_path: json
test_split: test
output_type: multiple_choice
doc_to_text: "What is the capital of {{country}}?\\nAnswer:"
doc_to_choice: choices
doc_to_target: answer
metric_list: [{metric: acc, aggregation: mean, higher_is_better: true}]
metadata:
  version: 1.0
  forgetbench: {role: target, primary_metric: "acc,none", chance: 0.25, sources: [{path: rows.jsonl}]}
"""
ROWS = [{"country": "France", "choices": ["Paris", "Lyon"], "answer": 0},
        {"country": "Japan", "choices": ["Osaka", "Tokyo"], "answer": 1}]


@pytest.fixture
def user_tasks(tmp_path, monkeypatch):
    """A --tasks-dir folder with one task, and the registry without pinned hashes (fixture rows)."""
    d = tmp_path / "my_tasks" / "capitals"
    d.mkdir(parents=True)
    (d / "capitals.yaml").write_text(TASK_YAML)
    (d / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    monkeypatch.setenv(registry.TASKS_DIRS_ENV, str(d.parent))
    real = registry.all_tasks()
    monkeypatch.setattr(registry, "all_tasks", lambda: {k: replace(v, data_hashes=()) for k, v in real.items()})
    return d.parent


def _entry(work: Path, entry_id: str, *args) -> Path:
    scripts = []
    for name, resp in (("base", "Paris"), (f"tuned-{entry_id}", "Lyon")):  # one tuned model per entry
        p = work / f"{name}.json"
        p.write_text(json.dumps({"name": name, "default_response": f"{name} says 42",
                                 "choose": [{"match": "capital of France", "continuation": resp}]}))
        scripts.append(f"fake:{p}")
    db = work / "store.duckdb"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(["eval", *scripts, *args, "--data-dir", str(FIXTURES), "--db", str(db)]) == 0
    out = work / "submissions" / entry_id
    export.export_entry(db, out, base=scripts[0], tuned=scripts[1], target=_target(args))
    md = yaml.safe_load((out / "metadata.yaml").read_text())
    md.update(FILLED)
    (out / "metadata.yaml").write_text(yaml.safe_dump(md, sort_keys=False))
    return out


def _target(args) -> str:
    args = list(args)
    if "--target" in args:
        return args[args.index("--target") + 1]
    return load_prompts(Path(args[args.index("--target-prompts") + 1])).name


def test_custom_entries_get_their_own_groups(tmp_path, user_tasks, fb_home):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "Summarize the news."}\n{"prompt": "Write a limerick."}\n')
    work = tmp_path / "w"
    work.mkdir()
    lite = ("--suite", "lite", "--limit", "4")  # an entry covers a whole suite (+ its target)
    reg = _entry(work, "registry-entry", *lite, "--target", "lite_countdown")
    mine = _entry(work, "capitals-entry", *lite, "--target", "capitals")
    from_prompts = _entry(work, "prompts-entry", *lite, "--target-prompts", str(prompts))
    (work / "submissions" / "verified.yaml").write_text("[]\n")
    reports = {r.entry: r for r in validate_entries([reg, mine, from_prompts])}
    assert all(r.status != INVALID for r in reports.values()), {k: r.errors for k, r in reports.items()}

    res = build(work / "submissions", tmp_path / "site")
    import duckdb

    con = duckdb.connect(str(res.out / "leaderboard.duckdb"), read_only=True)
    custom = dict(con.execute("SELECT entry_id, custom FROM entries").fetchall())
    assert custom == {"registry-entry": False, "capitals-entry": True, "prompts-entry": True}
    ctx = site._load(con)
    groups = {k: [e["entry_id"] for e in v] for k, v in ctx["by_target"].items()}
    assert groups == {"lite_countdown": ["registry-entry"], "custom: capitals": ["capitals-entry"],
                      f"custom: {_target(['--target-prompts', str(prompts)])}": ["prompts-entry"]}
    index = (res.out / "index.html").read_text()
    assert "custom: capitals" in index
