"""CPU worker processes (forgetbench.eval.workers): same per-item results as one process, the rules that
decide the count, and the fallback when the pool breaks."""

from __future__ import annotations

import dataclasses

import pytest

from forgetbench.eval import workers
from forgetbench.errors import UserError
from forgetbench.eval.run import EvalRequest, evaluate_pair
from forgetbench.records import EvalSettings, ModelRef
from forgetbench.store import Store

TASKS = ("lite_arith", "lite_refusal", "lite_mc")


def _items(db):
    with Store(db, read_only=True) as s:
        return s.con.execute(
            "SELECT r.task, i.doc_id, i.response, i.score FROM items i JOIN runs r USING (run_id) ORDER BY 1, 2"
        ).fetchall()


def _eval(tiny_model_dir, db, monkeypatch, n: str):
    monkeypatch.setenv(workers.ENV, n)
    return evaluate_pair(EvalRequest(base=str(tiny_model_dir), tuned=str(tiny_model_dir), tasks=TASKS, limit=6,
                                     db=db, kl=False, settings=EvalSettings(batch_size=4, max_gen_toks=8)))


@pytest.mark.slow
def test_two_workers_give_the_same_items_as_one_process(tiny_model_dir, fb_home, tmp_path, monkeypatch, capsys):
    one = _eval(tiny_model_dir, tmp_path / "one.duckdb", monkeypatch, "1")
    assert "worker processes" not in capsys.readouterr().err
    two = _eval(tiny_model_dir, tmp_path / "two.duckdb", monkeypatch, "2")
    err = capsys.readouterr().err
    assert "3 task(s)" in err and "in 2 single-thread worker processes" in err
    assert all(f"[base] {t}: done in" in err for t in TASKS)
    rows = _items(tmp_path / "two.duckdb")
    assert rows == _items(tmp_path / "one.duckdb") and len(rows) == 3 * 6
    assert [d.delta for d in two.deltas] == [d.delta for d in one.deltas]


def test_broken_pool_falls_back_to_this_process(tiny_model_dir, fb_home, tmp_path, monkeypatch, capsys):
    from concurrent.futures.process import BrokenProcessPool

    def broken(*a, **k):
        raise BrokenProcessPool("a worker died")

    monkeypatch.setattr("concurrent.futures.ProcessPoolExecutor", broken)
    monkeypatch.setattr(workers, "cores", lambda: 2)
    _eval(tiny_model_dir, tmp_path / "s.duckdb", monkeypatch, "2")
    err = capsys.readouterr().err
    assert "worker processes failed (BrokenProcessPool" in err and "scoring the rest in this process" in err
    assert len(_items(tmp_path / "s.duckdb")) == 3 * 6


def _model(tmp_path, size: int, kind: str = "local") -> ModelRef:
    (tmp_path / "model.safetensors").write_bytes(b"\0" * size)
    return ModelRef(spec="m", kind=kind, path=str(tmp_path), content_hash="0" * 64)


@pytest.mark.parametrize("env,cores,expected", [("", 2, 2), ("", 8, 3), ("1", 2, 1), ("4", 2, 2), ("", 1, 1)])
def test_count_follows_cores_env_and_tasks(tmp_path, monkeypatch, env, cores, expected):
    monkeypatch.setenv(workers.ENV, env)
    monkeypatch.setattr(workers, "cores", lambda: cores)
    cpu = EvalSettings(backend="hf", device="cpu", dtype="float32")
    assert workers.worker_count(cpu, _model(tmp_path, 10), n_tasks=3) == expected


def test_no_workers_off_cpu_or_off_hf_or_for_fake_models(tmp_path, monkeypatch):
    monkeypatch.setenv(workers.ENV, "")
    monkeypatch.setattr(workers, "cores", lambda: 4)
    cpu = EvalSettings(backend="hf", device="cpu", dtype="float32")
    assert workers.worker_count(dataclasses.replace(cpu, device="cuda"), _model(tmp_path, 10), 4) == 1
    assert workers.worker_count(dataclasses.replace(cpu, backend="vllm"), _model(tmp_path, 10), 4) == 1
    assert workers.worker_count(cpu, _model(tmp_path, 10, kind="fake"), 4) == 1


def test_copies_must_fit_in_half_the_memory(tmp_path, monkeypatch):
    monkeypatch.setenv(workers.ENV, "")
    monkeypatch.setattr(workers, "cores", lambda: 4)
    monkeypatch.setattr(workers, "_available_bytes", lambda: 1000)
    cpu = EvalSettings(backend="hf", device="cpu", dtype="float32")
    # stored 16-bit, float32 in memory: 2 x 100 bytes per copy, 500 bytes may be used -> 2 copies
    assert workers.worker_count(cpu, _model(tmp_path, 100), 4) == 2
    assert workers.worker_count(cpu, _model(tmp_path, 600), 4) == 1


def test_bad_env_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(workers.ENV, "two")
    with pytest.raises(UserError, match="FORGETBENCH_WORKERS='two'"):
        workers.worker_count(EvalSettings(backend="hf", device="cpu"), _model(tmp_path, 10), 2)


def test_longest_task_goes_first():
    from forgetbench.tasks import registry
    from forgetbench.records import Docs

    spec = registry.get("lite_arith")
    docs = Docs(task="lite_arith", rows=({},) * 10, data_hash="x", sources=())
    gen = {"output_type": "generate_until", "generation_kwargs": {"max_gen_toks": 80}}
    assert workers.cost(spec, docs, gen) == 10 * 88
    assert workers.cost(spec, docs, {"output_type": "multiple_choice"}) == 10 * workers.LOGLIK_TOKENS
