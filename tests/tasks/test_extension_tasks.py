"""tasks/README.md's "Adding a task", followed for a generative task with training data: one folder,
the rows hash printed by `forgetbench tasks hash` and pasted into the YAML, training rows and the
expert declared in its metadata. Also the rules for the built-in tasks' `utils.py` (one hook name
per purpose, one import guard) and that the guard lets lm-eval load a task from a bare checkout."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from forgetbench.tasks import data, registry
from forgetbench.train import data as train_data, recipe as recipes
from support import REPO

TASKS = REPO / "tasks"

# The import guard every built-in utils.py that uses forgetbench starts with (tasks/README.md, Rules).
GUARD = '''try:
    import forgetbench  # noqa: F401
except ImportError:  # a bare checkout run by `lm_eval --include_path tasks` without installing
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
'''
# lm-eval key -> the one name of the utils.py hook that fills it.
HOOKS = {"custom_dataset": "dataset", "doc_to_text": "doc_to_text", "process_results": "process_results",
         "filter_fn": "build_predictions", "aggregation": "agg_inst_level_acc"}

ROWS = [{"question": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in [(1, 2), (3, 4), (5, 6), (7, 8),
                                                                             (9, 10), (11, 12)]]
TRAIN = [{"question": f"What is {a} + {a}?", "answer": str(2 * a)} for a in range(20, 29)] + [ROWS[0]]
YAML = """\
task: sums
dataset_path: json
test_split: test
output_type: generate_until
doc_to_text: "{{question}}\\nAnswer:"
doc_to_target: "{{answer}}"
generation_kwargs: {until: ["\\n"], do_sample: false, max_gen_toks: 8}
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
  forgetbench:
    role: target
    suites: [mine]
    primary_metric: exact_match,none
    chance: 0.0
    data_hashes: []
    sources:
      - {path: rows.jsonl}
    train_sources:
      - {path: train.jsonl}
    expert: "sums_expert:answer"
"""
EXPERT = "def answer(row):\n    return row['answer']\n"


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def forgetbench(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(registry.TASKS_DIRS_ENV, None)
    run = subprocess.run([sys.executable, "-m", "forgetbench.cli", *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300)
    if check:
        assert run.returncode == 0, run.stderr
    return run


@pytest.fixture
def my_tasks(tmp_path, fb_home) -> Path:
    """Step 1 and 2 of the README: a folder with one task folder (YAML, rows, training rows)."""
    d = tmp_path / "my_tasks" / "sums"
    d.mkdir(parents=True)
    _jsonl(d / "rows.jsonl", ROWS)
    _jsonl(d / "train.jsonl", TRAIN)
    (d / "sums.yaml").write_text(YAML)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "sums_expert.py").write_text(EXPERT)  # the expert: any importable module:function
    return d.parent


def test_adding_a_task_with_a_printed_pin_and_training_data(my_tasks, monkeypatch):
    yaml_file = my_tasks / "sums" / "sums.yaml"
    cwd = my_tasks.parent
    listing = forgetbench("tasks", "--tasks-dir", "my_tasks", cwd=cwd).stdout
    assert re.search(r"^sums\s+target\s+mine\s.*custom", listing, flags=re.M), listing

    # Step 4: the printed hash, pasted; asked again, it is pinned.
    first = forgetbench("tasks", "hash", "sums", "--tasks-dir", "my_tasks", cwd=cwd)
    full = first.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", full) and "pin it" in first.stderr
    yaml_file.write_text(yaml_file.read_text().replace("data_hashes: []", f"data_hashes: [{full}]"))
    assert "already pinned" in forgetbench("tasks", "hash", "sums", "--tasks-dir", "my_tasks", cwd=cwd).stderr

    # A --limit subsample: its hash and the data_rows entry, both printed, both pasted.
    sub = forgetbench("tasks", "hash", "sums", "--limit", "4", "--tasks-dir", "my_tasks", cwd=cwd)
    part = sub.stdout.strip()
    rows_pin = re.search(rf"{part}: \{{n: 4, items: [0-9a-f]{{64}}\}}", sub.stderr)
    assert rows_pin, sub.stderr
    text = yaml_file.read_text().replace(f"data_hashes: [{full}]", f"data_hashes: [{full}, {part}]")
    yaml_file.write_text(text.replace("    sources:", f"    data_rows: {{{rows_pin.group(0)}}}\n    sources:"))
    again = forgetbench("tasks", "hash", "sums", "--limit", "4", "--tasks-dir", "my_tasks", "--json", cwd=cwd)
    assert json.loads(again.stdout)["pinned"] is True

    # The registry reads what was pasted; the rows hash to it.
    monkeypatch.setenv(registry.TASKS_DIRS_ENV, str(my_tasks))
    spec = registry.get("sums")
    assert spec.custom and spec.data_hashes == (full, part)
    assert (part, 4) == spec.data_rows[0][:2]
    assert data.load_docs(spec).data_hash == full

    # Training rows and the expert come from the metadata: train.jsonl minus the one eval row.
    assert [s.describe() for s in spec.train_sources] == [str(my_tasks / "sums" / "train.jsonl")]
    monkeypatch.syspath_prepend(str(my_tasks.parent / "pkg"))
    recipe = recipes.load_recipe(None, "sft", ["n_train=20"])
    rows, scorer, info = train_data.training_rows(spec, recipe, None, None)
    assert info["source"].startswith(str(my_tasks / "sums" / "train.jsonl"))
    assert info["n_dropped_eval_overlap"] == 1 and sorted(map(json.dumps, rows)) == sorted(map(json.dumps, TRAIN[:-1]))
    examples = train_data.expert_examples(spec, rows, scorer)
    assert [ex["completion"] for ex in examples] == [r["answer"] for r in rows]
    assert all(scorer.score(doc, ex["completion"]) == 1.0 for doc, ex in zip(scorer.docs, examples))


def test_a_wrong_pin_is_never_accepted(my_tasks):
    yaml_file, cwd = my_tasks / "sums" / "sums.yaml", my_tasks.parent
    other = hashlib.sha256(b"other rows").hexdigest()  # well formed, but not these rows: never matches
    yaml_file.write_text(YAML.replace("data_hashes: []", f"data_hashes: [{other}]"))
    out = forgetbench("tasks", "hash", "sums", "--tasks-dir", "my_tasks", "--json", cwd=cwd).stdout
    assert json.loads(out)["pinned"] is False
    # A pasted message instead of the hash: refused when the registry loads, naming file and field.
    yaml_file.write_text(YAML.replace("data_hashes: []", "data_hashes: [sums: 6 rows from rows.jsonl]"))
    bad = forgetbench("tasks", "--tasks-dir", "my_tasks", cwd=cwd, check=False)
    assert bad.returncode == 2 and "sums.yaml" in bad.stderr and "data_hashes" in bad.stderr


def test_bad_training_metadata_is_refused(my_tasks):
    yaml_file, cwd = my_tasks / "sums" / "sums.yaml", my_tasks.parent
    for old, new, field in [('expert: "sums_expert:answer"', "expert: sums_expert.answer", "expert"),
                            ("- {path: train.jsonl}", "- {file: train.jsonl}", "train_sources")]:
        yaml_file.write_text(YAML.replace(old, new))
        bad = forgetbench("tasks", "--tasks-dir", "my_tasks", cwd=cwd, check=False)
        assert bad.returncode == 2 and f"sums.yaml: metadata.forgetbench.{field}" in bad.stderr, bad.stderr


# ---------------------------------------------------------------------------- the built-in utils.py


def test_hooks_have_one_name_per_purpose():
    seen = set()
    for yaml_file in sorted(TASKS.glob("*/*.yaml")):
        for key, name in re.findall(r"(\w+): !function utils\.(\w+)", yaml_file.read_text()):
            assert key in HOOKS and name == HOOKS[key], f"{yaml_file}: {key} hook is utils.{name}"
            seen.add(key)
    assert {"custom_dataset", "process_results"} <= seen


def test_utils_share_one_import_guard():
    users = [f for f in sorted(TASKS.glob("*/utils.py")) if "forgetbench" in f.read_text().split('"""', 2)[-1]]
    assert len(users) >= 8
    for f in users:
        code = f.read_text().split('"""', 2)[-1].lstrip("\n")
        assert code.startswith(GUARD), f"{f}: does not start with the shared import guard"


def test_lm_eval_loads_a_task_from_a_bare_checkout(tmp_path):
    """`lm_eval --include_path tasks` with forgetbench not installed: only the guard can find it."""
    script = textwrap.dedent(f"""
        import importlib.abc, importlib.machinery, sys
        from pathlib import Path
        REPO = Path({str(REPO)!r})

        class NotInstalled(importlib.abc.MetaPathFinder):
            # forgetbench is importable only from a sys.path entry that is this checkout
            def find_spec(self, name, path=None, target=None):
                if name != "forgetbench":
                    return None
                for entry in sys.path:
                    if entry and Path(entry).resolve() == REPO:
                        return importlib.machinery.PathFinder.find_spec(name, [entry])
                raise ModuleNotFoundError("No module named 'forgetbench'", name=name)

        # an editable install of this checkout puts it on sys.path: take it off, as if not installed
        sys.path[:] = [e for e in sys.path if not e or Path(e).resolve() != REPO]
        sys.meta_path.insert(0, NotInstalled())
        try:
            import forgetbench
            raise SystemExit("forgetbench importable before the guard ran")
        except ModuleNotFoundError:
            pass
        from lm_eval.tasks import TaskManager
        tm = TaskManager(include_path=[str(REPO / "tasks")], include_defaults=False)
        task = tm.load_task_or_group(["lite_arith"])["lite_arith"]
        import forgetbench
        print(len(task.dataset["test"]), Path(forgetbench.__file__).resolve().is_relative_to(REPO))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[-2:] == ["200", "True"]
