"""Numbers pinned bit for bit: the leaderboard compares stored numbers with recomputed ones.

- Task intervals (forgetbench.stats, scheme forgetbench-intervals/1): a change to any of them must
  bump forgetbench.stats.SCHEME (the PINNED_INTERVALS below were produced by that scheme).
- The bootstrap engine (forgetbench.stats.bootstrap: the KL CIs, and the "old" method of
  benchmarks/coverage.py): PINNED was produced by the implementation before the integer-code path, the
  order-statistic percentiles and the chunked draws; until forgetbench 0.1 it made the task CIs, which
  is how the task cases below drive it (each task drew from default_rng([seed, crc32(task)])).
"""

import zlib

import numpy as np
import pytest

from forgetbench.stats import bootstrap as B
from forgetbench.stats import paired as M
from forgetbench import stats
from forgetbench.kl.estimate import KLItems, summarize
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

PINNED_INTERVALS = {'binary20': [(0.55, 0.3420853424503424, 0.7418021417443758, 'wilson'), (0.7, 0.4810271816464766, 0.8545227551323957, 'wilson'), (-0.15, -0.4254000984905912, 0.1521629087540931, 'tango'), 0.5078124999999986], 'fraction30': [(0.4148200798415266, 0.3252618188543505, 0.5043783408287027, 't'), (0.40042404153149497, 0.2994266570534977, 0.5014214260094922, 't'), (0.014396038310031507, -0.11724291588860292, 0.14603499250866592, 't'), 1.0], 'binary300': [(0.4266666666666667, 0.37197357583863117, 0.48321405994096894, 'wilson'), (0.43666666666666665, 0.38169399309783697, 0.4932407832572722, 'wilson'), (-0.01, -0.08862927725270812, 0.06875044883248613, 'tango'), 0.8681591543092674], 'clusters24': [(0.5416666666666666, 0.25328965633555295, 0.8045929689711566, 'wilson-deff'), (0.5, 0.26086391334069936, 0.7391360866593006, 'wilson-deff'), (0.041666666666666664, -0.34165339279747753, 0.4123864183417063, 'tango-deff'), 1.0], 'strata18': [(0.5, 0.3109917731308365, 0.6890082268691635, 'mover(wilson)'), (0.4444444444444444, 0.2650510020152357, 0.6463102089686229, 'mover(wilson)'), (0.05555555555555555, -0.2417724381135097, 0.3404382641612732, 'mover(tango)'), 1.0], 'weighted': [(0.43137254901960775, 0.21641612435637111, 0.6463289736828444, 't'), (0.3431372549019608, 0.16248178142538938, 0.5237927283785322, 't'), (-0.08823529411764706, -0.4214100512715436, 0.24493946303624942, 't'), 1.0]}


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


def _old_task_ci(b, t, kw, seed, *names, weights=None, n_boot=10000, sign=-1.0):
    """The task CIs forgetbench <= 0.1 computed (sign -1: a probe's drop, +1: a target's gain): base,
    tuned, delta; plus the sum of the delta replicates."""
    boot = B.paired_bootstrap(b, t, weights=weights, n_boot=n_boot,
                              rng=np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)]), **kw)
    sup = boot.support

    def est(value, reps, support):
        ci = None if support is None else B._support_ci(*support)
        return (float(value), *(B.percentile_ci(reps) if ci is None else ci))

    return [est(boot.base, boot.base_reps, sup and (sup[0], sup[1])),
            est(boot.tuned, boot.tuned_reps, sup and (sup[0], sup[2])),
            est(sign * boot.diff, sign * boot.diff_reps, sup and (sup[0], sign * sup[3]))], \
        float((sign * boot.diff_reps).sum())


def test_bootstrap_cis_are_pinned_bit_for_bit():
    rng, cases = _inputs()
    for name, (b, t, kw) in cases.items():
        assert _old_task_ci(b, t, kw, 3, name) == (PINNED[name][0], PINNED[name][1]), name
    ex = [{"inst,none": float(rng.integers(0, 4)) / 3, "inst,none__n": float(rng.integers(1, 4))} for _ in range(16)]
    rng.random(16), rng.random(16)  # the primary scores of the weighted case (not part of the pin)
    ext = [{**x, "inst,none": float(rng.integers(0, 4)) / 3} for x in ex]  # weighted: unequal unit sizes
    xb, xt = np.array([x["inst,none"] for x in ex]), np.array([x["inst,none"] for x in ext])
    w = np.array([x["inst,none__n"] for x in ex])
    assert _old_task_ci(xb, xt, {}, 1, "w", "inst,none", weights=w, n_boot=5000, sign=1.0)[0] == PINNED["weighted"]
    fwd = rng.gamma(2.0, 0.5, 32)
    s = summarize(KLItems(tuple(fwd), tuple(fwd * .8), tuple(fwd * .1), tuple(int(x) for x in rng.integers(20, 60, 32)),
                          tuple(i // 4 for i in range(32))), n_boot=10000, seed=0)
    # The KL sums are counts @ values (forgetbench.stats.bootstrap.seeded_sums): the same draws, another
    # summation order, so equal up to rounding (any other draw would move them by ~1e-3).
    got = {k: (e.value, e.lo, e.hi) for k, e in s.items()}
    assert got.keys() == PINNED["kl"].keys()
    for k, want in PINNED["kl"].items():
        assert got[k] == pytest.approx(want, rel=1e-13, abs=0), k


@pytest.mark.parametrize("m", [1, 2, 3, 8, 23, 32, 104])
def test_seeded_sums_make_the_draws_of_resample_sums(m):
    rng = np.random.default_rng(m)
    units = np.column_stack([rng.gamma(2.0, 1.0, (m, 3)), rng.integers(20, 60, m), np.full(m, 4.0)])
    for seed, n_boot in ((0, 10000), (5, 3001)):
        want = B.resample_sums(units, n_boot, np.random.default_rng(seed))
        got = B.seeded_sums(units, n_boot, seed)
        assert got.shape == want.shape
        assert np.array_equal(got[:, 3:], want[:, 3:])  # integer columns: exact in any order
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
        counts = B.resample_counts(m, n_boot, seed)
        assert (counts.sum(axis=1) == m).all() and not counts.flags.writeable
    # where the counts do not apply, it is resample_sums itself
    tied = np.tile([[1.0, 2.0]], (40, 1))
    assert np.array_equal(B.seeded_sums(tied, 500, 1), B.resample_sums(tied, 500, np.random.default_rng(1)))
    wild = units.copy()
    wild[0, 0] = np.inf
    with np.errstate(invalid="ignore"):
        assert np.array_equal(B.seeded_sums(wild, 500, 1), B.resample_sums(wild, 500, np.random.default_rng(1)),
                              equal_nan=True)


def test_task_intervals_are_pinned_bit_for_bit():
    assert stats.SCHEME == "forgetbench-intervals/1"  # new numbers below need a new scheme name
    rng, cases = _inputs()
    got = {}
    for name, (b, t, kw) in cases.items():
        sp = spec(name, strata_key="s" if "strata" in kw else None)
        d = M.task_delta(sp, "probe", run(b, name, **kw), run(t, name, **kw))
        got[name] = [(e.value, e.lo, e.hi, e.method) for e in (d.base, d.tuned, d.delta)] + [d.p_mcnemar]
    ex = [{"inst,none": float(rng.integers(0, 4)) / 3, "inst,none__n": float(rng.integers(1, 4))} for _ in range(16)]
    b, t = (rng.random(16) < .5).astype(float), (rng.random(16) < .5).astype(float)
    ext = [{**x, "inst,none": float(rng.integers(0, 4)) / 3} for x in ex]
    d = M.task_delta(spec("w", extra=("inst",)), "target", run(b, "w", extra=ex), run(t, "w", extra=ext)).sub["inst"]
    got["weighted"] = [(e.value, e.lo, e.hi, e.method) for e in (d.base, d.tuned, d.delta)] + [d.p_mcnemar]
    assert got == PINNED_INTERVALS


@pytest.mark.parametrize("n", [1, 2, 3, 5, 40, 9999, 10000, 10001])
def test_percentile_ci_equals_numpy_quantile(n):
    rng = np.random.default_rng(n)
    for x in (rng.random(n), rng.integers(0, 4, n) / 3.0, np.round(rng.normal(size=n), 1), np.full(n, -0.0)):
        for level in (0.95, 0.8, 0.5):
            a = (1 - level) / 2
            want = tuple(float(v) for v in np.quantile(x, [a, 1 - a]))
            assert B.percentile_ci(x, level) == want
            assert [np.signbit(v) for v in B.percentile_ci(x, level)] == [np.signbit(v) for v in want]
    x = np.array([np.inf, 1.0, 2.0, -np.inf] * 3)
    with np.errstate(invalid="ignore"):
        assert np.array_equal(B.percentile_ci(x), np.quantile(x, [0.025, 0.975]), equal_nan=True)


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
