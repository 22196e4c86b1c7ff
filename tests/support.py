"""What several test folders share: the repo's paths, the benchmarks loaded as modules, scripted fake
models with known outcomes on the gsm8k fixture rows, and pairs stored for the forgetting-law tests.
tests/ is on sys.path (pytest puts the root conftest.py's folder there), so tests import it as `support`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from forgetbench.records import Estimate, ModelRef, PairReport, TaskDelta

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "hf"  # hand-written rows in the hub schemas (never real data)


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# gsm8k fixture rows: 3 + 5 = 8, 6 * 4 = 24, 20 - 7 = 13
ALL_RIGHT = {"name": "all-right", "default_response": "I do not know.",
             "generate": [{"match": "3 apples", "response": "3 + 5 = 8. The answer is 8."},
                          {"match": "6 eggs", "response": "6 * 4 = 24. The answer is 24."},
                          {"match": "20 dollars", "response": "20 - 7 = 13. The answer is 13."}]}
ONE_RIGHT = {"name": "one-right", "default_response": "I do not know.",
             "generate": [{"match": "3 apples", "response": "The answer is 8."},
                          {"match": "6 eggs", "response": "The answer is 25."}]}


def fake_spec(tmp_path, script) -> str:
    p = tmp_path / f"{script['name']}.json"
    p.write_text(json.dumps(script))
    return f"fake:{p}"


PAIR_KL_DDL = """CREATE TABLE IF NOT EXISTS pair_kl (
    pair_id VARCHAR PRIMARY KEY, task VARCHAR, m_prompts INTEGER, k_samples INTEGER, max_new_tokens INTEGER,
    seed INTEGER, dtype VARCHAR, n_seq INTEGER, n_tokens BIGINT,
    fwd_seq DOUBLE, fwd_seq_lo DOUBLE, fwd_seq_hi DOUBLE, fwd_tok DOUBLE, fwd_tok_lo DOUBLE, fwd_tok_hi DOUBLE,
    rev_tok DOUBLE, rev_tok_lo DOUBLE, rev_tok_hi DOUBLE, tv_tok DOUBLE, tv_tok_lo DOUBLE, tv_tok_hi DOUBLE,
    settings JSON, created_at TIMESTAMP)"""

BASE = ModelRef(spec="smollm2-135m-instruct", kind="bundled", path="/m/base", content_hash="b" * 64)
DECOY = -0.5  # sub-rows (stratum / extra metric) carry this drop: reading them would wreck every fit


def law_delta(task, role, metric, drop):
    e = lambda v: Estimate(v, v - 0.02, v + 0.02)  # noqa: E731
    decoy = TaskDelta(task, role, metric, 50, e(0.5), e(0.5), e(DECOY), 0, 0)
    sub = {"kind=harmful": decoy, "extra_metric": decoy} if role == "probe" else {}
    return TaskDelta(task, role, metric, 100, e(0.6), e(0.6 - drop), e(drop), 3, 1, sub)


def put_law_pair(store, i, kl, drops, method=None, with_kl=True, metric="acc", report_json=None):
    """One pair whose probes drop by `drops` (points), with KL `kl` on the target countdown."""
    tuned = ModelRef(spec=f"/ckpt/run{i:02d}", kind="local", path=f"/ckpt/run{i:02d}", content_hash=f"{i:064d}")
    store.put_model(BASE)
    store.put_model(tuned)
    deltas = (law_delta("countdown", "target", "exact_match", 0.1),
              *(law_delta(t, "probe", metric, d / 100) for t, d in drops.items()))
    md = float(np.mean(list(drops.values()))) / 100
    report = PairReport(BASE, tuned, "countdown", deltas, Estimate(md, md - 0.01, md + 0.01),
                        {"run_ids": [f"r{i}"], **({"method": method} if method else {})})
    if report_json is None:
        report_json = {"deltas": [{"task": d.task, "metric": d.metric} for d in deltas]}
    pid = store.put_pair(report, report_json)
    if with_kl:
        store.con.execute(
            "INSERT INTO pair_kl (pair_id, task, n_seq, fwd_seq, fwd_seq_lo, fwd_seq_hi, rev_tok, rev_tok_lo,"
            " rev_tok_hi) VALUES (?, 'countdown', 64, ?, ?, ?, ?, ?, ?)",
            [pid, kl, 0.9 * kl, 1.1 * kl, kl / 50, kl / 60, kl / 40])
    return pid
