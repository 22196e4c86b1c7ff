"""The DuckDB store: round trips, atomic runs, and refusing files that are not a forgetbench store."""

import duckdb
import pytest

from forgetbench.errors import UserError
from forgetbench.records import ItemResult, ModelRef, TaskRun
from forgetbench.store import Store, run_id


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
