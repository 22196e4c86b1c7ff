"""Intervals with their methods through the whole chain (issue 10): results.json v2 is checked to the bit,
a format-1 entry is recomputed transparently, and a version-1 store is upgraded without losing a row."""

import copy
from pathlib import Path

import duckdb
import pytest

from forgetbench import stats
from forgetbench.leaderboard.build import build
from forgetbench.records import Estimate, ModelRef, PairReport, TaskDelta
from forgetbench.store import Store
from forgetbench.leaderboard.validate import INVALID, validate_entries
from support import load_benchmark

gen = load_benchmark("leaderboard_build")

N = 20
TARGET = "lite_countdown"


def _right(k: int) -> list[int]:
    return [1] * k + [0] * (N - k)


def _results(entry_id: str = "e-one") -> dict:
    from forgetbench.tasks import registry

    probes = [t.name for t in registry.suite("lite") if t.name != TARGET]  # the whole suite, as eval runs it
    p_base = {TARGET: _right(4), **{p: _right(15) for p in probes}}
    p_tuned = {TARGET: _right(12), **{p: _right(15 - i) for i, p in enumerate(probes)}}
    return gen.results_for(entry_id, TARGET, probes, p_base, p_tuned, n_items=N)


def _as_v1(res: dict) -> dict:
    """The same entry as forgetbench 0.1 exported it: bootstrap CIs (here: made up), no methods or tests."""
    old = copy.deepcopy(res)

    def strip(agg: dict) -> None:
        for k in ("base", "tuned", "delta"):
            agg[k] = {"value": agg[k]["value"], "lo": agg[k]["value"] - 0.01, "hi": agg[k]["value"] + 0.01}
        for k in ("p_mcnemar", "p_holm", "verdict"):
            agg.pop(k, None)
        for s in agg.get("sub", {}).values():
            strip(s)

    for t in old["tasks"]:
        strip(t["aggregate"])
    old["mean_drop"] = {k: old["mean_drop"][k] for k in ("value", "lo", "hi")}
    old.pop("intervals")
    old.update(format_version=1, bootstrap={"n_boot": 10000, "seed": 0, "ci": 0.95})
    return old


def _validate(root: Path, entry_id: str, res: dict):
    gen.write_entry(root, entry_id, res)
    return validate_entries([root / entry_id])[0]


def test_v2_entry_checks_methods_and_tests(tmp_path):
    res = _results()
    rep = _validate(tmp_path, "e-one", res)
    assert rep.status != INVALID, rep.errors  # synthetic rows: stale (not the registry's data) is fine
    agg = res["tasks"][1]["aggregate"]  # a probe
    assert agg["delta"]["method"] == "tango" and agg["verdict"] in ("dropped", "n.s.") and 0 <= agg["p_holm"] <= 1
    assert res["intervals"] == stats.settings() and res["mean_drop"]["method"] == "mover"
    for path, value in ((("tasks", 1, "aggregate", "delta", "lo"), agg["delta"]["lo"] - 0.01),
                        (("tasks", 1, "aggregate", "delta", "method"), "percentile-bootstrap"),
                        (("tasks", 1, "aggregate", "p_holm"), 0.001),
                        (("tasks", 1, "aggregate", "verdict"), "dropped" if agg["verdict"] != "dropped" else "n.s."),
                        (("mean_drop", "hi"), res["mean_drop"]["hi"] + 0.01),
                        (("intervals", "scheme"), "forgetbench-intervals/0")):
        bad = copy.deepcopy(res)
        node = bad
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        rep = _validate(tmp_path, "e-bad", bad)
        fields = [p.field for p in rep.errors]
        assert rep.status == INVALID and any(f.startswith(".".join(map(str, path[:1]))) for f in fields), (path, fields)


def test_format_1_entry_is_recomputed_transparently(tmp_path):
    res = _results()
    rep = _validate(tmp_path, "e-one", _as_v1(res))
    assert rep.status != INVALID, rep.errors  # synthetic rows: stale (not the registry's data) is fine
    assert any(w.field == "format_version" and "re-export" in w.problem for w in rep.warnings)
    # the leaderboard gets the entry as the current export writes it: same intervals, methods, tests
    assert rep.results["format_version"] == 2 and "bootstrap" not in rep.results
    assert rep.results["tasks"] == res["tasks"] and rep.results["mean_drop"] == res["mean_drop"]
    site = build(tmp_path, tmp_path.parent / "site-v1")
    assert site.n_entries == 1
    con = duckdb.connect(str(tmp_path.parent / "site-v1" / "leaderboard.duckdb"), read_only=True)
    got = con.execute("SELECT gain_lo, gain_hi, gain_method, mean_drop_method FROM entries").fetchone()
    gain = res["tasks"][0]["aggregate"]["delta"]
    assert got == (gain["lo"], gain["hi"], "tango", "mover")
    page = (tmp_path.parent / "site-v1" / "entries" / "e-one.html").read_text()
    assert "McNemar p" in page and "forgetbench-intervals/1" in page


def test_format_1_entry_with_a_wrong_value_is_invalid(tmp_path):
    old = _as_v1(_results())
    old["tasks"][1]["aggregate"]["delta"]["value"] += 0.05
    rep = _validate(tmp_path, "e-one", old)
    assert rep.status == INVALID
    assert any(p.field == "tasks[1].aggregate.delta.value" for p in rep.errors)


def _report() -> PairReport:
    ref = ModelRef("m", "local", "/m", "a" * 64)
    d = TaskDelta("t", "probe", "acc", 10, Estimate(0.5, 0.2, 0.8, "wilson"), Estimate(0.4, 0.1, 0.7, "wilson"),
                  Estimate(0.1, -0.1, 0.3, "tango"), 2, 1, p_mcnemar=1.0, p_holm=1.0, verdict="n.s.")
    return PairReport(ref, ref, None, (d,), Estimate(0.1, -0.1, 0.3, "mover"), {"run_ids": ["r"]})


def test_version_1_store_is_upgraded_in_place(tmp_path):
    db = tmp_path / "s.duckdb"
    with Store(db) as s:
        pid = s.put_pair(_report(), {})
    con = duckdb.connect(str(db))  # make it a version-1 store: no method / test columns
    for c in ("base_method", "tuned_method", "delta_method", "p_mcnemar", "p_holm", "verdict"):
        con.execute(f"ALTER TABLE pair_tasks DROP COLUMN {c}")
    con.execute("ALTER TABLE pairs DROP COLUMN mean_drop_method")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    with Store(db, read_only=True) as s:  # readable as it is; a read-only open changes nothing
        assert s.con.execute("SELECT delta, delta_lo FROM pair_tasks").fetchone() == (0.1, -0.1)
    assert duckdb.connect(str(db), read_only=True).execute("SELECT value FROM meta").fetchone() == ("1",)
    with Store(db) as s:
        row = s.con.execute("SELECT pair_id, delta, delta_lo, delta_hi, delta_method, p_mcnemar FROM pair_tasks").fetchone()
        assert row == (pid, 0.1, -0.1, 0.3, "percentile-bootstrap", None)
        assert s.con.execute("SELECT mean_drop, mean_drop_method FROM pairs").fetchone() == (0.1, "percentile-bootstrap")
        assert s.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
        s.put_pair(_report(), {})  # and it takes new pairs
        assert s.con.execute("SELECT delta_method, verdict FROM pair_tasks").fetchall() == [("tango", "n.s.")]


@pytest.mark.parametrize("version", ["3", "0"])
def test_unknown_store_versions_are_refused(tmp_path, version):
    db = tmp_path / "s.duckdb"
    Store(db).close()
    con = duckdb.connect(str(db))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [version])
    con.close()
    from forgetbench.errors import UserError

    with pytest.raises(UserError, match=f"schema version {version}"):
        Store(db)
