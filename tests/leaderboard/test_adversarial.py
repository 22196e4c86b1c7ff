"""A hostile submitter (issue 11): well-formed but dishonest entries built from the shipped reference
entries, and the exact outcome of each. Every entry here has its aggregates recomputed after the edit
(`reseal`), so it is internally consistent and only the integrity/trust checks can catch it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from forgetbench.leaderboard import integrity
from forgetbench.tasks import registry
from forgetbench.leaderboard.validate import INVALID, OK, validate_entries
from support import REPO, load_benchmark

SHIPPED = REPO / "submissions"
REFS = sorted(p.name for p in SHIPPED.glob("reference-*") if p.is_dir())
# The demo's SFT entry (16 pinned rows per task; the tests below count on that), not one of the
# reproduction's (benchmarks/reproduce.py --export: 96 rows, "-repro-" in the name).
SFT = "reference-smollm2-135m-lite-ifeval-sft"
fuzz = load_benchmark("fuzz_dishonest")
reseal = fuzz.reseal  # recompute every aggregate from the (edited) items, as an honest export would


def load(entry: Path) -> tuple[dict, dict]:
    return yaml.safe_load((entry / "metadata.yaml").read_text()), json.loads((entry / "results.json").read_text())


def save(entry: Path, md: dict | None = None, res: dict | None = None) -> None:
    if md is not None:
        (entry / "metadata.yaml").write_text(yaml.safe_dump(md, sort_keys=False, allow_unicode=True))
    if res is not None:
        (entry / "results.json").write_text(json.dumps(res))


def sha(entry: Path) -> str:
    return hashlib.sha256((entry / "results.json").read_bytes()).hexdigest()


@pytest.fixture
def root(tmp_path) -> Path:
    """A submissions root holding copies of the shipped reference entries and the maintainers' lists."""
    r = tmp_path / "submissions"
    r.mkdir()
    for name in REFS:
        shutil.copytree(SHIPPED / name, r / name)
    for f in ("reference.yaml", "verified.yaml"):
        shutil.copy(SHIPPED / f, r / f)
    return r


def derive(root: Path, new_id: str, *, source: str = SFT, tuned: str | None = "f" * 64, edit=None, md_edit=None,
           seal: bool = True, own_outputs: bool = True) -> Path:
    """A new entry from a shipped one: another id (and tuned hash), `edit(res)` applied, aggregates resealed.
    `own_outputs`: another tuned model has other outputs (one response differs), else it is a copy."""
    entry = root / new_id
    shutil.copytree(root / source, entry)
    md, res = load(entry)
    md["id"] = new_id
    md["reference"] = False
    if tuned is not None:
        md["tuned"]["content_hash"] = res["pair"]["tuned_hash"] = tuned
        if own_outputs:
            res["tasks"][-1]["items"][-1]["tuned"]["response"] += f" ({new_id})"
    if edit:
        edit(res)
    if seal:
        reseal(res)
    if md_edit:
        md_edit(md)
    save(entry, md, res)
    return entry


def reports(root: Path, *paths) -> dict:
    return {r.entry: r for r in validate_entries(list(paths) or [root], root=root)}


def task_index(res: dict, name: str) -> int:
    return next(i for i, t in enumerate(res["tasks"]) if t["task"] == name)


def errors_at(report, field: str) -> list[str]:
    return [p.problem for p in report.errors if p.field == field]


def test_the_shipped_entries_are_ok_and_reference(root):
    got = reports(root)
    assert {k: (r.status, r.badges) for k, r in got.items()} == {n: (OK, ("self-reported", "reference")) for n in REFS}


# ------------------------------------------------------------------------------------ trust


def flip_base(task: str, k: int):
    def edit(res):
        t = res["tasks"][task_index(res, task)]
        key = t["primary_metric"] if "," in t["primary_metric"] else t["primary_metric"] + ",none"
        for it in t["items"][:k]:
            it["base"]["score"] = it["base"]["metrics"][key] = 1.0 - it["base"]["score"]
    return edit


def test_reference_hijack_is_rejected_and_evicts_nobody(root):
    """Issue 11.1: a new entry for the reference base, `reference: true`, other base scores."""
    derive(root, "hijack", edit=flip_base("lite_arith", 5), md_edit=lambda md: md.update(reference=True))
    got = reports(root)
    assert got["hijack"].status == INVALID and "reference" not in got["hijack"].badges
    assert [p.file for p in got["hijack"].errors] == ["metadata.yaml"]
    assert "only the maintainers' reference.yaml" in errors_at(got["hijack"], "reference")[0]
    for name in REFS:  # the real reference entries keep their status and badge, no "canonical" complaint
        assert (got[name].status, got[name].badges) == (OK, ("self-reported", "reference")), got[name].errors


def test_canonical_base_is_the_first_verified_entry(root):
    derive(root, "other-base-run", edit=flip_base("lite_arith", 5))
    assert reports(root)["other-base-run"].status == OK  # no verified entry: no canonical run, nothing compared
    (root / "verified.yaml").write_text(f"- id: {SFT}\n  sha256: {sha(root / SFT)}\n")
    got = reports(root)
    i = task_index(json.loads((root / "other-base-run" / "results.json").read_text()), "lite_arith")
    assert got["other-base-run"].status == INVALID
    assert f"canonical entry {SFT!r}" in errors_at(got["other-base-run"], f"tasks[{i}].items")[0]
    assert "on 5 of 16 items" in errors_at(got["other-base-run"], f"tasks[{i}].items")[0]
    assert got[SFT].badges == ("verified", "reference")
    assert all(got[n].status == OK for n in REFS)  # one base model: where two ran the same rows, the same base scores


def test_self_declared_reference_on_a_new_base_gets_no_badge(root):
    def new_base(res):
        res["pair"]["base_hash"] = "e" * 64

    entry = derive(root, "third-party", edit=new_base, md_edit=lambda md: md.update(reference=True))
    md, _ = load(entry)
    md["base"]["content_hash"] = "e" * 64
    save(entry, md)
    r = reports(root)["third-party"]
    assert r.status == INVALID and r.badges == ("self-reported",)
    assert errors_at(r, "reference")
    # Listed by the maintainers, it is a reference entry; changed afterwards, it is invalid until re-listed.
    with open(root / "reference.yaml", "a") as f:
        f.write(f"- id: third-party\n  sha256: {sha(entry)}\n")
    assert reports(root)["third-party"].badges == ("self-reported", "reference")
    _, res = load(entry)
    res["exported_at"] = "2031-01-01T00:00:00Z"
    save(entry, res=res)
    r = reports(root)["third-party"]
    assert r.status == INVALID and "changed since it was listed" in errors_at(r, "third-party")[0]


# ------------------------------------------------------------------------------------ registry rows


def drop_items(task: str, keep):
    def edit(res):
        t = res["tasks"][task_index(res, task)]
        t["items"] = [it for it in t["items"] if keep(it)]
    return edit


@pytest.mark.parametrize("task,n,kept", [("lite_arith", 16, 13), ("lite_mc", 16, 12)])
def test_cherry_picked_items_are_not_the_registry_rows(root, task, n, kept):
    """Issue 11.2: items cut from 16 to 13 (16 to 12), aggregates recomputed: invalid, not stale. The shipped
    entries are on the demo's pinned 16-row subsamples, which validate regenerates from the entry's seed."""
    entry = derive(root, "cherry", edit=drop_items(task, lambda it: it["doc_id"] >= n - kept))
    r = reports(root)["cherry"]
    i = task_index(load(entry)[1], task)
    assert r.status == INVALID and "stale" not in r.badges
    msg = errors_at(r, f"tasks[{i}].items")[0]
    missing = ", ".join(map(str, range(n - kept)))
    assert f"{kept} items, the registry's rows are {n}" in msg and f"doc_id {missing} missing" in msg


def test_a_replaced_row_or_stratum_is_not_the_registry_row(root):
    def edit(res):
        t = res["tasks"][task_index(res, "lite_refusal")]
        t["items"][3]["doc_hash"] = "0" * 32
        t["items"][5]["stratum"] = "safe" if t["items"][5]["stratum"] == "harmful" else "harmful"

    entry = derive(root, "swap", edit=edit)
    i = task_index(load(entry)[1], "lite_refusal")
    msg = errors_at(reports(root)["swap"], f"tasks[{i}].items")[0]
    assert "doc_id 3, 5 not the registry's row" in msg


def test_a_dropped_probe_is_invalid_however_the_settings_are_edited(root):
    entry = derive(root, "dropped", edit=lambda res: res["tasks"].pop(task_index(res, "lite_mc")))
    r = reports(root)["dropped"]
    assert "lists lite_mc, which results.json has no results for" in errors_at(r, "pair.settings.tasks")[0]
    assert "lack lite_mc of suite demo" in errors_at(r, "tasks")[0]
    _, res = load(entry)
    res["pair"]["settings"]["tasks"].remove("lite_mc")
    save(entry, res=res)
    r = reports(root)["dropped"]
    assert not errors_at(r, "pair.settings.tasks") and "lack lite_mc of suite demo" in errors_at(r, "tasks")[0]
    res["pair"]["settings"]["suite"] = None
    save(entry, res=res)
    assert "is null" in errors_at(reports(root)["dropped"], "pair.settings.suite")[0]


def test_out_of_range_scores_are_rejected(root):
    """Issue 11.2: an item score of 1e6 on a 0/1 metric (with its metric, so the item is consistent)."""
    def huge(res):
        t = res["tasks"][task_index(res, "lite_ifeval")]
        t["items"][0]["tuned"]["score"] = t["items"][0]["tuned"]["metrics"]["prompt_level_strict_acc,none"] = 1e6

    entry = derive(root, "huge", edit=huge)
    i = task_index(load(entry)[1], "lite_ifeval")
    assert "is 1000000.0; prompt_level_strict_acc is 0 or 1" in errors_at(
        reports(root)["huge"], f"tasks[{i}].items[0].tuned.score")[0]

    def fraction(res):
        t = res["tasks"][task_index(res, "lite_ifeval")]
        t["items"][1]["base"]["metrics"]["inst_level_strict_acc,none"] = 1.5

    derive(root, "frac", edit=fraction)
    field = f'tasks[{i}].items[1].base.metrics["inst_level_strict_acc,none"]'
    assert "is a fraction in [0, 1]" in errors_at(reports(root)["frac"], field)[0]


def test_interval_and_kl_settings_must_be_the_projects(root):
    entry = derive(root, "settings", seal=False)
    md, res = load(entry)
    res["kl"]["settings"]["n_boot"] = 1
    res["kl"]["items"][0]["fwd"] = -0.5
    if "bootstrap" in res:  # format v1
        res["bootstrap"]["n_boot"] = 1
    save(entry, res=res)
    r = reports(root)["settings"]
    assert "n_boot = 10000" in errors_at(r, "kl.settings.n_boot")[0]
    assert "never negative" in errors_at(r, "kl.items[0].fwd")[0]
    if "bootstrap" in res:
        assert "n_boot = 10000" in errors_at(r, "bootstrap.n_boot")[0]


def test_pair_settings_must_match_the_tasks_settings(root):
    """A base run in another dtype is another base identity; claiming one only in pair.settings is caught."""
    entry = derive(root, "dtype", seal=False)
    md, res = load(entry)
    other = "bfloat16" if res["pair"]["settings"]["dtype"] == "float32" else "float32"
    res["pair"]["settings"]["dtype"] = other
    save(entry, res=res)
    assert f"pair.settings.dtype is '{other}'" in errors_at(reports(root)["dtype"], "tasks[0].gen_settings.dtype")[0]


@pytest.mark.parametrize("key", ["backend", "dtype", "seed"])
def test_a_setting_removed_from_the_pair_is_invalid(root, key):
    """Without it the pair's base identity would differ from its runs' and escape the canonical base check."""
    entry = derive(root, "gone", seal=False)
    md, res = load(entry)
    del res["pair"]["settings"][key]
    save(entry, res=res)
    assert f"is missing but tasks[0].gen_settings.{key} is" in errors_at(reports(root)["gone"], f"pair.settings.{key}")[0]


# ------------------------------------------------------------------------------------ duplicates and copies


def _git(cwd: Path, *args: str, date: str | None = None) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org"}
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_copy_never_evicts_the_original(root):
    """Issue 11.3: the same pair under a second folder. The earlier entry in git history stays, even when
    the copy's commit is back-dated and its id sorts first."""
    repo = root.parent
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "references")
    derive(root, "aaa-copy", tuned=None, seal=False)  # same base, tuned model and target as SFT
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "copy", date="2001-01-01T00:00:00")
    got = reports(root)
    assert got[SFT].status == OK
    assert got["aaa-copy"].status == INVALID
    assert f"duplicate: entry {SFT!r} came first" in errors_at(got["aaa-copy"], "pair")[0]
    # A copy not yet committed (a pull request's working tree) is later than everything committed.
    derive(root, "aab-copy", tuned=None, seal=False)
    assert f"entry {SFT!r} came first" in errors_at(reports(root)["aab-copy"], "pair")[0]


def test_a_relabelled_copy_is_rejected(root):
    """Another entry's results under a new tuned hash: the tuned per-item results give it away."""
    derive(root, "relabelled", seal=False, own_outputs=False)
    r = reports(root)["relabelled"]
    assert r.status == INVALID and f"identical to those of entry {SFT!r}" in errors_at(r, "tasks")[0]
    assert reports(root)[SFT].status == OK


# ------------------------------------------------------------------------------------ text


def test_lone_surrogates_are_rejected_with_their_field(root):
    """Issue 11.4: "\\ud800" in a title or a response used to pass validate and crash the site build."""
    entry = derive(root, "surrogate", edit=flip_base("lite_arith", 1), md_edit=lambda md: md.update(title="TITLE"))
    md_text = (entry / "metadata.yaml").read_text().replace("TITLE", '"A \\ud800 title"')
    (entry / "metadata.yaml").write_text(md_text)
    res = load(entry)[1]
    i = task_index(res, "lite_mc")
    res["tasks"][i]["items"][2]["tuned"]["response"] = "RESPONSE"
    (entry / "results.json").write_text(json.dumps(res).replace("RESPONSE", "bad \\udc80 text"))
    r = reports(root)["surrogate"]
    assert r.status == INVALID
    assert {(p.file, p.field) for p in r.errors} == {("metadata.yaml", "title"),
                                                     ("results.json", f"tasks[{i}].items[2].tuned.response")}
    assert all("lone surrogate" in p.problem for p in r.errors)


def test_unencodable_finder_names_keys_too():
    probs = integrity.unencodable({"ok": "x", "hp": {"\udcff": 1}}, "metadata.yaml")
    assert [p.field for p in probs] == ['hp["\\\\udcff"] (the key)']


# ------------------------------------------------------------------------------------ the site


def test_a_failed_build_leaves_the_previous_site(root, tmp_path, monkeypatch):
    """Issue 11.4: a crash while rendering used to happen after the previous site was deleted."""
    from forgetbench.leaderboard import build as leaderboard, site

    out = tmp_path / "site"
    assert leaderboard.build(root, out).n_entries == len(REFS)
    (out / "mine.txt").write_text("not the builder's")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real = site.render

    def crash(con, new, templates=None):
        real(con, new, templates)
        (new / "index.html").write_text("half written")
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(site, "render", crash)
    with pytest.raises(UnicodeEncodeError):
        leaderboard.build(root, out)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".site")] == []
    monkeypatch.undo()
    derive(root, "newcomer", edit=flip_base("lite_arith", 2))
    assert leaderboard.build(root, out).n_entries == len(REFS) + 1
    assert (out / "mine.txt").read_text() == "not the builder's" and (out / "entries" / "newcomer.html").is_file()


def test_hostile_text_and_folder_names_cannot_break_the_build(root, tmp_path):
    from forgetbench.leaderboard import build as leaderboard

    entry = derive(root, "surrogate", edit=flip_base("lite_arith", 1), md_edit=lambda md: md.update(title="TITLE"))
    (entry / "metadata.yaml").write_text((entry / "metadata.yaml").read_text().replace("TITLE", '"\\ud800"'))
    os.mkdir(bytes(root) + b"/bad-\xff-name")  # a folder name that is not UTF-8 (kept as a surrogate)
    res = leaderboard.build(root, tmp_path / "site")
    assert (res.n_entries, res.n_excluded) == (len(REFS), 2)
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "bad-\\xff-name" in index and "surrogate" in index


def test_the_demo_evaluates_a_registered_suite():
    """The demo's entries are reference entries, so they declare a suite and report all of it."""
    from forgetbench import demo

    assert {t.name for t in registry.suite(demo.DEMO_SUITE)} == set(demo.DEMO_TASKS)
