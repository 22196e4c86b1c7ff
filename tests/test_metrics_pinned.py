"""CIs pinned bit for bit: the leaderboard compares stored CIs with recomputed ones, so a faster
forgetbench.metrics must draw and sum exactly as before. The numbers below were produced by the
implementation before the integer-code path, the order-statistic percentiles and the chunked draws
(tests/test_metrics.py covers what they mean)."""

import numpy as np
import pytest

from forgetbench import bootstrap as B
from forgetbench import metrics as M
from forgetbench.kl import KLItems, summarize
from forgetbench.records import ItemResult, TaskRun, TaskSpec


def spec(name, strata_key=None, extra=()):
    return TaskSpec(name=name, role="probe", suites=("core",), version="1", primary_metric="acc", higher_is_better=True,
                    chance=0.0, cluster_key=None, strata_key=strata_key, sources=(), yaml_path="x.yaml",
                    extra_metrics=tuple(extra))


def run(scores, task, clusters=None, strata=None, extra=None):
    return TaskRun("m", task, "1", "d", "g", {}, tuple(
        ItemResult(doc_id=i, doc_hash=f"h{i}", prompt="", response="", score=float(s),
                   metrics={"acc,none": float(s), **(extra[i] if extra else {})},
                   cluster=clusters[i] if clusters else None, stratum=strata[i] if strata else None)
        for i, s in enumerate(scores)), {})


PINNED = {'binary20': ([(0.55, 0.35, 0.75), (0.7000000000000001, 0.5, 0.9), (-0.15, -0.45, 0.15)], -1519.8), 'fraction30': ([(0.4148200798415264, 0.33050829798150255, 0.5002551728261424), (0.4004240415314949, 0.3102144890399623, 0.49699511208675695), (0.014396038310031523, -0.1099090310072435, 0.13838251737894702)], 140.79853818791145), 'binary300': ([(0.4266666666666667, 0.37333333333333335, 0.48333333333333334), (0.4366666666666667, 0.38, 0.4933333333333333), (-0.01, -0.08666666666666667, 0.06666666666666667)], -101.78), 'clusters24': ([(0.5416666666666666, 0.2916666666666667, 0.7916666666666666), (0.49999999999999994, 0.29166666666666663, 0.6666666666666667), (0.041666666666666664, -0.25, 0.2916666666666667)], 450.20833333333337), 'strata18': ([(0.5, 0.2777777777777778, 0.7222222222222222), (0.4444444444444444, 0.2222222222222222, 0.6666666666666666), (0.05555555555555555, -0.2222222222222222, 0.3333333333333333)], 578.1111111111111), 'weighted': [(0.4313725490196078, 0.25, 0.619047619047619), (0.3431372549019608, 0.19444444444444453, 0.5151515151515151), (-0.08823529411764705, -0.37039682539682534, 0.20371863799283138)], 'kl': {'fwd_per_seq': (1.005781582793212, 0.900671780856386, 1.1344555189685486), 'fwd_per_token': (0.023088242933560103, 0.01903596517551256, 0.028225186423411992), 'rev_per_token': (0.018470594346848085, 0.015228772140410051, 0.022580149138729595), 'tv_per_token': (0.0023088242933560106, 0.0019035965175512564, 0.0028225186423411993)}}


def _inputs():
    rng = np.random.default_rng(2024)
    cases = {
        "binary20": ((rng.random(20) < .5).astype(float), (rng.random(20) < .6).astype(float), {}),  # integer codes
        "fraction30": (rng.random(30), rng.random(30), {}),  # complex gather path
        "binary300": ((rng.random(300) < .4).astype(float), (rng.random(300) < .5).astype(float), {}),  # multinomial
        "clusters24": ((rng.random(24) < .5).astype(float), (rng.random(24) < .5).astype(float),
                       {"clusters": [f"c{i // 4}" for i in range(24)]}),
        "strata18": ((rng.random(18) < .5).astype(float), (rng.random(18) < .5).astype(float), {"strata": ["a", "b"] * 9}),
    }
    return rng, cases


def test_task_cis_are_pinned_bit_for_bit():
    rng, cases = _inputs()
    for name, (b, t, kw) in cases.items():
        sp = spec(name, strata_key="s" if "strata" in kw else None)
        d, r = M.task_delta_with_reps(sp, "probe", run(b, name, **kw), run(t, name, **kw), n_boot=10000, seed=3)
        got = [(e.value, e.lo, e.hi) for e in (d.base, d.tuned, d.delta)]
        assert (got, float(r.sum())) == (PINNED[name][0], PINNED[name][1]), name
    ex = [{"inst,none": float(rng.integers(0, 4)) / 3, "inst,none__n": float(rng.integers(1, 4))} for _ in range(16)]
    b, t = (rng.random(16) < .5).astype(float), (rng.random(16) < .5).astype(float)
    ext = [{**x, "inst,none": float(rng.integers(0, 4)) / 3} for x in ex]  # weighted: unequal unit sizes
    d = M.task_delta(spec("w", extra=("inst",)), "target", run(b, "w", extra=ex), run(t, "w", extra=ext), n_boot=5000, seed=1)
    assert [(e.value, e.lo, e.hi) for e in (d.sub["inst"].base, d.sub["inst"].tuned, d.sub["inst"].delta)] == PINNED["weighted"]
    fwd = rng.gamma(2.0, 0.5, 32)
    s = summarize(KLItems(tuple(fwd), tuple(fwd * .8), tuple(fwd * .1), tuple(int(x) for x in rng.integers(20, 60, 32)),
                          tuple(i // 4 for i in range(32))), n_boot=10000, seed=0)
    assert {k: (e.value, e.lo, e.hi) for k, e in s.items()} == PINNED["kl"]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 40, 9999, 10000, 10001])
def test_percentile_ci_equals_numpy_quantile(n):
    rng = np.random.default_rng(n)
    for x in (rng.random(n), rng.integers(0, 4, n) / 3.0, np.round(rng.normal(size=n), 1), np.full(n, -0.0)):
        for level in (0.95, 0.8, 0.5):
            a = (1 - level) / 2
            want = tuple(float(v) for v in np.quantile(x, [a, 1 - a]))
            assert M.percentile_ci(x, level) == want
            assert [np.signbit(v) for v in M.percentile_ci(x, level)] == [np.signbit(v) for v in want]
    x = np.array([np.inf, 1.0, 2.0, -np.inf] * 3)
    with np.errstate(invalid="ignore"):
        assert np.array_equal(M.percentile_ci(x), np.quantile(x, [0.025, 0.975]), equal_nan=True)


@pytest.mark.parametrize("units", [
    np.array([[1.0, 0.0], [0.0, -1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]] * 4),  # integer codes
    np.random.default_rng(1).random((23, 3)),  # complex gather, odd column count
])
def test_resampled_sums_do_not_depend_on_the_chunking(units, monkeypatch):
    def sums(chunk, rows):
        monkeypatch.setattr(B, "_CHUNK", chunk)
        monkeypatch.setattr(B, "_MIN_ROWS", rows)
        boot = B._boot_units(np.column_stack([units[:, :2], np.ones(len(units))]), 3001, np.random.default_rng(5))
        return boot.base_reps, boot.diff_reps, B.resample_sums(units, 3001, np.random.default_rng(5))

    ref = sums(4_000_000, 1)  # one chunk, as before chunking existed
    for chunk, rows in ((1, 1), (100, 7), (1 << 15, 64)):
        assert all(np.array_equal(a, b) for a, b in zip(sums(chunk, rows), ref))
