"""validate_entries spreads the per-entry checks over a process pool for large roots: the reports
must be exactly the serial ones, and a broken entry or a crash inside a worker still becomes an
error on that entry only."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from forgetbench.runtime import fanout
from forgetbench.leaderboard import validate
from support import load_benchmark

gen = load_benchmark("leaderboard_build")


FORK = multiprocessing.get_start_method() == "fork"


@pytest.fixture(scope="module")
def subs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("par") / "submissions"
    rng = np.random.default_rng(3)
    probes = gen.suite_tasks("lite_countdown")
    for i in range(7):
        p = {t: 0.3 + 0.4 * rng.random() for t in ("lite_countdown", *probes)}
        res = gen.results_for(f"par-{i}", "lite_countdown", probes, p, {t: min(1.0, v + 0.1) for t, v in p.items()},
                              rng=rng)
        gen.write_entry(root, f"par-{i}", res, reference=(i == 0))
    sha = hashlib.sha256((root / "par-0" / "results.json").read_bytes()).hexdigest()
    (root / "reference.yaml").write_text(f"- id: par-0\n  sha256: {sha}\n")
    res = json.loads((root / "par-3" / "results.json").read_text())
    res["tasks"][1]["aggregate"]["delta"]["lo"] += 0.01  # a tampered CI
    (root / "par-3" / "results.json").write_text(json.dumps(res))
    (root / "par-5" / "results.json").write_text('{"a": 1, "a": 2}')  # unparsable
    return root


def _reports(subs: Path, monkeypatch, min_entries: int) -> list[dict]:
    monkeypatch.setattr(validate, "PARALLEL_MIN_ENTRIES", min_entries)
    return [r.to_json() | {"results": r.results, "sha": r.results_sha256}
            for r in validate.validate_entries(sorted(d for d in subs.iterdir() if d.is_dir()), root=subs)]


def test_pool_gives_the_serial_reports(subs, monkeypatch):
    serial = _reports(subs, monkeypatch, 10**9)
    # (stale or ok: the synthetic data hashes may not be the registry's)
    assert [r["status"] == "invalid" for r in serial] == [False] * 3 + [True, False, True, False]
    assert any(p["field"] == "tasks[1].aggregate.delta.lo" for p in serial[3]["errors"])
    assert "duplicate key" in serial[5]["errors"][0]["problem"]
    real_one, real_report, pids = validate._check_one, validate._report, set()

    def one(path, full, tasks, vprobs):
        e = real_one(path, full, tasks, vprobs)
        e.pid = os.getpid()
        return e

    def report(e, verified):
        pids.add(getattr(e, "pid", None))
        return real_report(e, verified)

    monkeypatch.setattr(validate, "_check_one", one)  # forked workers inherit the patch
    monkeypatch.setattr(validate, "_report", report)
    assert _reports(subs, monkeypatch, 2) == serial  # 7 entries over min(cores, 4) workers
    if fanout.cores() > 1 and FORK:
        assert pids and os.getpid() not in pids  # checked in the workers, not by the serial fallback


@pytest.mark.skipif(not FORK, reason="patches reach the workers only through fork")
def test_a_crash_in_a_worker_is_an_error_on_that_entry(subs, monkeypatch):
    real = validate.check_consistency

    def flaky(e, tasks):
        if e.path.name == "par-2":
            raise RuntimeError("boom")
        real(e, tasks)

    monkeypatch.setattr(validate, "check_consistency", flaky)  # forked workers inherit the patch
    reports = _reports(subs, monkeypatch, 2)
    assert reports[2]["status"] == "invalid" and "internal error (RuntimeError: boom)" in reports[2]["errors"][-1]["problem"]
    assert [r["status"] == "invalid" for i, r in enumerate(reports) if i != 2] == [False] * 2 + [True, False, True, False]
