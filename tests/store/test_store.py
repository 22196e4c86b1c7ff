"""The DuckDB store: round trips, atomic runs and pairs (with their KL), refusing files that are not a
forgetbench store, and no SQL on it outside forgetbench.store."""

import ast
from pathlib import Path

import duckdb
import pytest

import forgetbench
from forgetbench.errors import UserError
from forgetbench.records import Estimate, ItemResult, ModelRef, PairReport, TaskDelta, TaskRun
from forgetbench.store import Store, run_id
from forgetbench.store.rows import KLItem, KLSample


def _run(model="m" * 64, scores=(1.0, 0.0, 1.0), strata=None):
    items = tuple(
        ItemResult(doc_id=i, doc_hash=f"h{i}", prompt=f"p{i}", response=f"r{i}", score=s,
                   metrics={"acc,none": s}, cluster="c", stratum=strata[i] if strata else None)
        for i, s in enumerate(scores)
    )
    return TaskRun(model_hash=model, task="t", task_version="1", data_hash="d" * 64, gen_key="g" * 16,
                   gen_settings={"backend": "hf"}, items=items, provenance={"seed": 1})


def test_run_round_trip(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        rid = s.put_run(_run())
        assert rid == run_id("m" * 64, "t", "1", "d" * 64, "g" * 16)
        assert s.has_run(rid)
        back = s.get_run(rid)
    assert back == _run()
    with Store(tmp_path / "s.duckdb", read_only=True) as s:
        assert s.counts()["items"] == 3
        assert s.con.execute("SELECT score FROM runs").fetchone()[0] == pytest.approx(2 / 3)


def test_stratified_run_score_is_mean_of_stratum_means(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        s.put_run(_run(scores=(1.0, 1.0, 1.0, 0.0), strata=["harmful"] * 3 + ["safe"]))
        assert s.con.execute("SELECT score FROM runs").fetchone()[0] == pytest.approx(0.5)


def test_rerun_replaces_not_duplicates(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        s.put_run(_run())
        s.put_run(_run())
        assert s.counts()["items"] == 3 and s.counts()["runs"] == 1


def test_failed_write_leaves_previous_results(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        rid = s.put_run(_run())
        bad = _run()
        bad_items = bad.items + (bad.items[0],)  # duplicate doc_id violates the primary key
        with pytest.raises(duckdb.Error):
            s.put_run(TaskRun(**{**bad.__dict__, "items": bad_items}))
        assert s.get_run(rid) == _run()


def test_corrupt_file_is_a_clear_error_and_is_not_touched(tmp_path):
    db = tmp_path / "bad.duckdb"
    db.write_bytes(b"this is not a database" * 100)
    before = db.read_bytes()
    with pytest.raises(UserError, match="not a DuckDB file"):
        Store(db)
    assert db.read_bytes() == before


def test_foreign_duckdb_is_refused(tmp_path):
    db = tmp_path / "other.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE sales (x INTEGER)")
    con.close()
    with pytest.raises(UserError, match="not a forgetbench store"):
        Store(db)


def test_models_are_recorded_once(tmp_path):
    m = ModelRef(spec="x", kind="local", path="/x", content_hash="a" * 64)
    with Store(tmp_path / "s.duckdb") as s:
        s.put_model(m)
        s.put_model(m)
        assert s.counts()["models"] == 1


# ---- a pair with its tasks and KL: one transaction; the KL caches; no SQL outside the store

def _pair(i: int, kl: float | None = 0.3):
    e = lambda v: Estimate(v, v - 0.1, v + 0.1, "wilson")  # noqa: E731
    base = ModelRef(spec="base", kind="local", path="/b", content_hash="b" * 64)
    tuned = ModelRef(spec=f"tuned{i}", kind="local", path=f"/t{i}", content_hash=f"{i:064d}")
    sub = {"kind=safe": TaskDelta("p", "probe", "acc", 5, e(0.5), e(0.4), e(0.1), 1, 0)}
    deltas = (TaskDelta("t", "target", "acc", 10, e(0.2), e(0.6), e(0.4), 0, 4),
              TaskDelta("p", "probe", "acc", 10, e(0.5), e(0.4), e(0.1), 2, 1, sub))
    est = {"value": kl, "lo": kl / 2, "hi": 2 * kl} if kl is not None else None
    kl_dict = None if kl is None else {
        "task": "t", "n_seq": 8, "n_tokens": 40, "fwd_seq": est, "fwd_tok": est, "rev_tok": est, "tv_tok": est,
        "settings": {"m_prompts": 4, "k_samples": 2, "max_new_tokens": 16, "seed": 0, "dtype": "float32",
                     "sample_set": f"set{i}"}}
    return PairReport(base, tuned, "t", deltas, e(0.1), {"run_ids": [f"r{i}"]}, kl=kl_dict)


def _snapshot(s: Store) -> dict:
    return {t: sorted(map(repr, s.con.execute(f"SELECT * FROM {t}").fetchall()))
            for t in ("runs", "items", "pairs", "pair_tasks", "pair_kl")}


def test_pair_tasks_and_kl_round_trip(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        pid = s.put_pair(_pair(1), {"deltas": []})
        assert s.counts()["pairs"] == 1 and s.counts()["pair_tasks"] == 3  # target, probe, probe's stratum
        kl = s.pair_kl(pid)
        assert kl.task == "t" and kl.n_seq == 8 and kl.dtype == "float32"
        assert kl.estimates["fwd_seq"] == (0.3, 0.15, 0.6) and kl.settings["sample_set"] == "set1"
        (p,) = s.pairs_by_prefix(pid[:6])
        assert (p.pair_id, p.target, p.settings, p.report) == (pid, "t", {"run_ids": ["r1"]}, {"deltas": []})
        assert s.pair_kl("nope") is None


@pytest.mark.parametrize("fault, raised", [(RuntimeError("boom"), RuntimeError),
                                           (duckdb.IOException("No space left on device"), UserError)])
def test_a_failed_kl_write_leaves_nothing_of_the_pair(tmp_path, monkeypatch, fault, raised):
    db = tmp_path / "s.duckdb"
    with Store(db) as s:
        s.put_run(_run())
        first = s.put_pair(_pair(1), {"deltas": []})
        before = _snapshot(s)

        def broken(self, con, pid, kl):
            raise fault

        monkeypatch.setattr(Store, "_insert_pair_kl", broken)
        with pytest.raises(raised):
            s.put_pair(_pair(2), {"deltas": []})  # a new pair: none of its rows may stay
        with pytest.raises(raised):
            s.put_pair(_pair(1, kl=0.9), {"deltas": []})  # re-storing the first: its old rows must survive
        assert _snapshot(s) == before
        monkeypatch.undo()
        s.put_pair(_pair(2), {"deltas": []})  # the store still takes writes
    with Store(db, read_only=True) as s:
        assert s.counts()["pairs"] == 2 and s.pair_kl(first).estimates["fwd_seq"][0] == 0.3
        assert s.get_run(s.run_headers([run_id("m" * 64, "t", "1", "d" * 64, "g" * 16)], "m" * 64, "t")[0].run_id) == _run()


def test_a_malformed_kl_leaves_nothing_of_the_pair(tmp_path):
    bad = _pair(3)
    bad = PairReport(**{**bad.__dict__, "kl": {**bad.kl, "settings": {}}})  # no m_prompts...
    with Store(tmp_path / "s.duckdb") as s:
        with pytest.raises(KeyError):
            s.put_pair(bad, {})
        assert s.counts()["pairs"] == 0 and s.counts()["pair_tasks"] == 0


def test_kl_caches_round_trip(tmp_path):
    samples = [KLSample(0, 0, 7, (1, 2), (3,)), KLSample(1, 0, 7, (1, 2), (4, 5)), KLSample(2, 1, 9, (6,), ())]
    items = [KLItem(s.seq, s.prompt_index, 2, 0.5 * s.seq, 0.1, 0.2) for s in samples]
    with Store(tmp_path / "s.duckdb") as s:
        assert s.kl_samples("set") == [] and s.kl_items("set", "t" * 64) == []
        s.put_kl_samples("set", "b" * 64, "task", "d" * 64, {"m_prompts": 2}, samples)
        s.put_kl_items("set", "t" * 64, items)
        s.put_kl_items("set", "t" * 64, items)  # replaced, not duplicated
        assert s.kl_samples("set") == samples and s.kl_items("set", "t" * 64) == items
        assert s.kl_sample_sets("b" * 64, "task", "t" * 64) == ["set"]
        assert s.kl_sample_sets("b" * 64, "task", "u" * 64) == []
        assert s.counts()["kl_items"] == 3


def test_no_module_outside_the_store_runs_sql_on_it():
    """The store owns its SQL: no other module touches a connection's execute or a Store's `con`. The
    leaderboard's site file is another file with its own format, owned by its writer (tables.py: the
    tables and their inserts; build.py) and its readers (site.py, entry_pages.py)."""
    root = Path(forgetbench.__file__).parent
    allowed = {root / "leaderboard" / f for f in ("build.py", "tables.py", "site.py", "entry_pages.py")}
    found = []
    for f in sorted(root.rglob("*.py")):
        if root / "store" in f.parents or f in allowed:
            continue
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("con", "execute", "executemany", "sql"):
                found.append(f"{f.relative_to(root)}:{node.lineno} .{node.attr}")
    assert not found, found
