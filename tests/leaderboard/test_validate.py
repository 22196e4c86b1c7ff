"""`forgetbench validate` on real exported entries (fake-backend eval -> export) and on broken ones."""

import argparse
import copy
import hashlib
import json
import random
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from forgetbench.leaderboard import export, validate
from forgetbench.tasks import data, registry
from forgetbench.leaderboard.validate import INVALID, OK, STALE, validate_entries
from support import load_benchmark

# entries here are built from hand-written fixture rows, not the registered datasets: the registry is
# pinned to those rows instead
pytestmark = pytest.mark.usefixtures("registry_pinned_to_fixtures")

fuzz = load_benchmark("fuzz_validate")

OTHER_TUNED = {"name": "other", "default_response": "No.", "generate": [{"match": "6 eggs", "response": "24"}]}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(valid entry folder, store path, base spec) from a real eval; shared read-only by the tests."""
    work = tmp_path_factory.mktemp("validate_build")
    entry = fuzz.build_valid_entry(work, "fake-countdown")
    return entry, work / "store.duckdb", f"fake:{work / 'base.json'}"


@pytest.fixture
def root(tmp_path, built):
    """A fresh submissions root holding a copy of the valid entry."""
    r = tmp_path / "submissions"
    r.mkdir()
    (r / "verified.yaml").write_text("[]\n")
    shutil.copytree(built[0], r / built[0].name)
    return r


def _edit(entry: Path, fn) -> None:
    res = json.loads((entry / "results.json").read_text())
    fn(res)
    (entry / "results.json").write_text(json.dumps(res))


def _set_md(entry: Path, **kw) -> None:
    import yaml

    md = yaml.safe_load((entry / "metadata.yaml").read_text())
    md.update(kw)
    (entry / "metadata.yaml").write_text(yaml.safe_dump(md))


def _one(root: Path, name: str = "fake-countdown"):
    return next(r for r in validate_entries([root]) if r.entry == name)


def _fields(report) -> set[str]:
    return {p.field for p in report.errors}


def test_exported_entry_is_valid_and_recomputes_exactly(root):
    r = _one(root)
    assert r.status == OK, r.errors
    assert r.badges == ("self-reported",) and r.errors == () and r.warnings == ()
    assert r.results["pair"]["target"] == "countdown" and len(r.results["tasks"]) == 7  # the core suite
    assert r.results_sha256 == hashlib.sha256((root / "fake-countdown" / "results.json").read_bytes()).hexdigest()


def test_tampered_score_names_the_aggregate_fields(root):
    entry = root / "fake-countdown"
    res = json.loads((entry / "results.json").read_text())
    i = next(k for k, t in enumerate(res["tasks"]) if t["task"] == "gsm8k")
    item = res["tasks"][i]["items"][0]
    flipped = 1.0 - item["tuned"]["score"]
    item["tuned"]["score"] = flipped
    item["tuned"]["metrics"]["exact_match,flexible-extract"] = flipped  # consistent item, wrong aggregate
    (entry / "results.json").write_text(json.dumps(res))
    r = _one(root)
    assert r.status == INVALID
    assert f"tasks[{i}].aggregate.tuned.value" in _fields(r)
    assert f"tasks[{i}].aggregate.delta.value" in _fields(r)
    assert "mean_drop.value" in _fields(r)
    msg = next(p for p in r.errors if p.field == f"tasks[{i}].aggregate.tuned.value")
    assert msg.file == "results.json" and "recomputing from the items gives" in msg.problem


def test_item_score_must_equal_its_primary_metric(root):
    _edit(root / "fake-countdown", lambda res: res["tasks"][0]["items"][1]["base"].update(score=0.5))
    assert "tasks[0].items[1].base.score" in _fields(_one(root))


def test_edited_generation_settings_break_the_gen_key(root):
    _edit(root / "fake-countdown", lambda res: res["tasks"][1]["gen_settings"].update(seed=7))
    assert "tasks[1].gen_key" in _fields(_one(root))


def test_changed_registry_data_hash_or_version_makes_entry_stale(root, monkeypatch):
    real = registry.all_tasks()
    patched = {**real, "gsm8k": replace(real["gsm8k"], data_hashes=("0" * 64,)),
               "safety": replace(real["safety"], version="99.0")}
    monkeypatch.setattr(registry, "all_tasks", lambda: patched)
    r = _one(root)
    assert r.status == STALE and r.errors == ()
    assert "stale" in r.badges
    problems = " | ".join(p.problem for p in r.warnings)
    assert "data hash" in problems and "registry has 99.0" in problems
    # Stale is not invalid: the CLI still exits 0.
    assert validate.main(argparse.Namespace(paths=[root], root=None, json=True)) == 0


def test_accepted_data_hash_is_not_stale(root, monkeypatch):
    real = registry.all_tasks()
    res = json.loads((root / "fake-countdown" / "results.json").read_text())
    h = next(t["data_hash"] for t in res["tasks"] if t["task"] == "gsm8k")
    monkeypatch.setattr(registry, "all_tasks", lambda: {**real, "gsm8k": replace(real["gsm8k"], data_hashes=(h,))})
    assert _one(root).status == OK


def test_unknown_task_is_an_error(root):
    _edit(root / "fake-countdown", lambda res: res["tasks"][1].update(task="no_such_task"))
    r = _one(root)
    assert any(p.field == "tasks[1].task" and "unknown task" in p.problem for p in r.errors)


def test_folder_name_must_equal_id(root):
    (root / "fake-countdown").rename(root / "other-name")
    r = _one(root, "other-name")
    assert r.status == INVALID
    assert any(p.file == "metadata.yaml" and p.field == "id" and "other-name" in p.problem for p in r.errors)


def test_duplicate_pair_and_duplicate_id(root):
    shutil.copytree(root / "fake-countdown", root / "copy-entry")
    _set_md(root / "copy-entry", id="copy-entry")
    reports = {r.entry: r for r in validate_entries([root])}
    # Only the later entry is rejected, naming the earlier one. Outside git, "earlier" falls back to the
    # id order (git order: tests/test_adversarial.py).
    assert reports["copy-entry"].status == OK
    dup = [p for p in reports["fake-countdown"].errors if p.field == "pair"]
    assert dup and "'copy-entry' came first" in dup[0].problem and "duplicate" in dup[0].problem
    shutil.copytree(root / "fake-countdown", root / "third")  # keeps id fake-countdown
    r = next(r for r in validate_entries([root / "third"]) if r.entry == "third")
    assert any(p.field == "id" and "also used by" in p.problem for p in r.errors)


def _second_entry(root: Path, built, tmp_path, capsys) -> Path:
    """Same base, another tuned model: a second pair through the real eval + export path."""
    from forgetbench import cli

    entry, db, base = built
    store = tmp_path / "second.duckdb"
    shutil.copy(db, store)
    other = tmp_path / "other.json"
    other.write_text(json.dumps(OTHER_TUNED))
    args = ["eval", base, f"fake:{other}", "--suite", "core", "--target", "countdown",
            "--data-dir", str(fuzz.FIXTURES), "--db", str(store), "--json"]
    assert cli.main(args) == 0
    capsys.readouterr()
    out = root / "second-entry"
    export.export_entry(store, out, base=base, tuned=f"fake:{other}")
    _set_md(out, **fuzz.FILLED)
    return out


def _sha(entry: Path) -> str:
    return hashlib.sha256((entry / "results.json").read_bytes()).hexdigest()


def test_base_scores_must_agree_with_the_canonical_entry(root, built, tmp_path, capsys):
    second = _second_entry(root, built, tmp_path, capsys)
    first = root / "fake-countdown"
    assert {r.entry: r.status for r in validate_entries([root])} == {"fake-countdown": OK, "second-entry": OK}

    def flip_base(res):
        t = next(t for t in res["tasks"] if t["task"] == "gsm8k")
        t["items"][0]["base"]["score"] = 1.0 - t["items"][0]["base"]["score"]

    _edit(second, flip_base)
    # A reference entry (listed by the maintainers) is not canonical: no verified entry, no comparison.
    (root / "reference.yaml").write_text(f"- id: fake-countdown\n  sha256: {_sha(first)}\n")
    r = _one(root, "second-entry")
    assert not [p for p in r.errors if "canonical" in p.problem]
    assert _one(root).badges == ("self-reported", "reference")
    # The first verified entry of a base is canonical: the second entry's base scores must match it.
    (root / "verified.yaml").write_text(f"- id: fake-countdown\n  sha256: {_sha(first)}\n")
    r = _one(root, "second-entry")
    canon = [p for p in r.errors if "canonical entry 'fake-countdown'" in p.problem]
    assert len(canon) == 1 and "on 1 of 3 items" in canon[0].problem and "gsm8k" in canon[0].problem
    assert _one(root).badges == ("verified", "reference")
    # verified.yaml order decides between two verified entries of one base.
    (root / "verified.yaml").write_text(f"- id: second-entry\n  sha256: {_sha(second)}\n"
                                        f"- id: fake-countdown\n  sha256: {_sha(first)}\n")
    reports = {r.entry: r for r in validate_entries([root])}
    assert reports["second-entry"].badges == ("verified",)
    assert any("canonical entry 'second-entry'" in p.problem for p in reports["fake-countdown"].errors)


def test_canonical_comparison_needs_the_same_base_settings(root, built, tmp_path, capsys):
    """A base run in another dtype is another run of the base: never compared item by item (issue 9)."""
    second = _second_entry(root, built, tmp_path, capsys)
    first = root / "fake-countdown"
    (root / "verified.yaml").write_text(f"- id: fake-countdown\n  sha256: {_sha(first)}\n")

    def float32_base(res):
        res["pair"]["settings"]["dtype"] = "float32"
        for t in res["tasks"]:
            t["gen_settings"]["dtype"] = "float32"
            t["gen_key"] = data.gen_key(t["gen_settings"])
        t = next(t for t in res["tasks"] if t["task"] == "gsm8k")
        t["items"][0]["base"]["score"] = 1.0 - t["items"][0]["base"]["score"]
        key = t["primary_metric"]
        t["items"][0]["base"]["metrics"][key] = t["items"][0]["base"]["score"]

    _edit(second, float32_base)
    r = _one(root, "second-entry")
    assert not [p for p in r.errors if "canonical" in p.problem]
    # ... and the pair's settings must be the ones its tasks ran with.
    _edit(second, lambda res: res["pair"]["settings"].update(dtype="bfloat16"))
    r = _one(root, "second-entry")
    assert any(p.field.endswith("gen_settings.dtype") and "pair.settings" in p.problem for p in r.errors), r.errors


def test_verified_entry_whose_results_changed_is_invalid(root):
    (root / "verified.yaml").write_text(f"- id: fake-countdown\n  sha256: {'a' * 64}\n")
    r = _one(root)
    assert r.status == INVALID and any(p.file == "verified.yaml" for p in r.errors)
    assert r.badges == ("self-reported",)


def test_template_placeholders_are_rejected(root):
    _set_md(root / "fake-countdown", contact="TODO: email")
    assert any(p.field == "contact" and "placeholder" in p.problem for p in _one(root).errors)


def test_duplicate_doc_id_is_an_error_and_duplicate_rows_a_warning(root):
    def dup_hash(res):
        items = res["tasks"][0]["items"]
        items[1]["doc_hash"] = items[0]["doc_hash"]

    entry = root / "fake-countdown"
    original = (entry / "results.json").read_text()
    _edit(entry, dup_hash)
    r = _one(root)
    assert any(p.field == "tasks[0].items" and "duplicate rows" in p.problem for p in r.warnings)
    (entry / "results.json").write_text(original)
    _edit(entry, lambda res: res["tasks"][0]["items"][1].update(doc_id=res["tasks"][0]["items"][0]["doc_id"]))
    assert any(p.field == "tasks[0].items" and "duplicate doc_id" in p.problem for p in _one(root).errors)


@pytest.mark.parametrize("name,data,expect", [
    ("results.json", b'{"format": NaN}', "NaN is not allowed"),
    ("results.json", b'{"seed": 1e999}', "overflows"),
    ("results.json", b'{"seed": ' + b"9" * 5000 + b"}", "too large"),
    ("results.json", b"[" * 100000, "nested deeper"),
    ("results.json", b'{"a": 1, "a": 2}', "duplicate key"),
    ("results.json", b'{"x": "\xff"}', "not valid UTF-8"),
    ("metadata.yaml", b"a: &a [1, 2]\nb: [*a, *a]\n", "anchors and aliases"),
    ("metadata.yaml", b"!!python/object/apply:os.system ['true']\n", "invalid YAML"),
    ("metadata.yaml", b"", "is empty"),
])
def test_malformed_files_become_errors(root, name, data, expect):
    (root / "fake-countdown" / name).write_bytes(data)
    r = _one(root)
    assert r.status == INVALID
    assert any(p.file == name and expect in p.problem for p in r.errors), r.errors


def test_validate_dot_inside_an_entry_folder(root, monkeypatch):
    # `cd submissions/<id> && forgetbench validate .` (with or without --root ..): the entry under its own
    # name (not ''), its root found, checked once (not a duplicate of itself)
    monkeypatch.chdir(root / "fake-countdown")
    for kw in ({}, {"root": Path("..")}):
        (r,) = validate_entries([Path(".")], **kw)
        assert (r.entry, r.status, r.errors) == ("fake-countdown", "ok", ()), (kw, r.errors)


def test_symlinks_and_oversize_files_are_refused_without_reading(root):
    entry = root / "fake-countdown"
    (entry / "results.json").unlink()
    (entry / "results.json").symlink_to("/dev/zero")
    with open(entry / "metadata.yaml", "ab") as f:
        f.truncate(2**20)
    r = _one(root)
    problems = {p.file: p.problem for p in r.errors}
    assert "symlink" in problems["results.json"] and "cap" in problems["metadata.yaml"]


def test_cli_exit_codes_and_json(root, tmp_path, capsys):
    ns = lambda *paths: argparse.Namespace(paths=list(paths), root=None, json=True)  # noqa: E731
    assert validate.main(ns(root)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == [{"entry": "fake-countdown", "path": str(root / "fake-countdown"), "status": "ok",
                    "badges": ["self-reported"], "errors": [], "warnings": []}]
    _set_md(root / "fake-countdown", method="magic")
    assert validate.main(ns(root / "fake-countdown")) == 1
    assert json.loads(capsys.readouterr().out)[0]["errors"][0]["field"] == "method"
    with pytest.raises(validate.UserError):
        validate.main(ns(tmp_path / "nope"))


def test_seeded_fuzz_cases_never_raise(built, tmp_path):
    cases, tracebacks, _, samples = fuzz.run_cases(built[0], 200, 1234, tmp_path / "fuzz")
    assert sum(cases.values()) == 200
    assert sum(tracebacks.values()) == 0, samples[:3]
    assert len(cases) >= 20  # the mix really covers many kinds of damage


def test_every_single_field_deletion_is_detected_or_optional(built, tmp_path):
    """Deleting any one key of metadata.yaml or of results.json's fixed structure invalidates the entry."""
    import yaml

    md = yaml.safe_load((built[0] / "metadata.yaml").read_text())
    optional = {"reference", "notes", "hub_id", "revision"}
    for key in md:
        for sub in ([None] + list(md[key]) if isinstance(md[key], dict) and key in ("base", "tuned") else [None]):
            if (sub or key) in optional:
                continue
            r = tmp_path / f"del-{key}-{sub}"
            shutil.copytree(built[0].parent, r)
            m = copy.deepcopy(md)
            (m if sub is None else m[key]).pop(sub or key)
            (r / built[0].name / "metadata.yaml").write_text(yaml.safe_dump(m))
            assert _one(r).status == INVALID, (key, sub)


def test_random_deletions_in_results_skeleton_are_detected(built, tmp_path):
    res = json.loads((built[0] / "results.json").read_text())
    rng = random.Random(0)
    free = ("settings", "gen_settings", "metrics", "versions", "sub")
    paths = [p for p in fuzz._paths(res) if not any(f in p for f in free)]
    for k, path in enumerate(rng.sample(paths, 40)):
        r = tmp_path / f"del{k}"
        shutil.copytree(built[0].parent, r)
        doc = copy.deepcopy(res)
        del fuzz._parent(doc, path)[path[-1]]
        (r / built[0].name / "results.json").write_text(json.dumps(doc))
        assert _one(r).status == INVALID, path
