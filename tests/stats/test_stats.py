"""forgetbench.stats: published values, the cases forgetbench has, and coverage computed exactly."""

import math
from fractions import Fraction

import numpy as np
import pytest

from forgetbench import stats
from forgetbench.stats import (
    Interval, holm, mcnemar_exact, mean_interval, mean_of, paired_interval, t_quantile, z_quantile,
)
from forgetbench.stats.score import tango, wilson

Z = z_quantile(0.95)


def pairs(up, down, same_right, same_wrong):
    """base/tuned 0/1 vectors with the given numbers of 0->1, 1->0, 1->1 and 0->0 items."""
    b = [0] * up + [1] * down + [1] * same_right + [0] * same_wrong
    t = [1] * up + [0] * down + [1] * same_right + [0] * same_wrong
    return np.array(b, float), np.array(t, float)


def test_tango_matches_published_example():
    # Cavo et al. 2012 (Fagerland, Lydersen & Laake 2017, ch. 8): n12 = 6, n21 = 16, N = 161;
    # Tango asymptotic score CI -0.0621 (-0.1240 to -0.0054).
    lo, hi = tango(6, 16, 161, Z)
    assert (round(lo, 4), round(hi, 4)) == (-0.1240, -0.0054)
    iv = paired_interval(*pairs(6, 16, 59, 80))
    assert iv.method == "tango" and iv.value == pytest.approx(-10 / 161)
    assert (iv.lo, iv.hi) == (lo, hi)


def test_wilson_matches_published_example():
    # Newcombe 1998 (Statistics in Medicine 17:857), 81/263: Wilson 0.2553 to 0.3662.
    lo, hi = wilson(81, 263, Z)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)


def test_no_flip_is_never_a_zero_width_interval():
    for n in (1, 48, 200, 5000):
        iv = paired_interval(np.ones(n), np.ones(n))
        assert iv.value == 0 and (iv.lo, iv.hi) == pytest.approx((-Z**2 / (n + Z**2), Z**2 / (n + Z**2)))
    x = np.array([0.2, 0.5, 0.9, 0.4])  # non-binary, identical: the t interval would be [0, 0]
    iv = paired_interval(x, x)
    assert iv.method == "tango-range" and iv.lo < 0 < iv.hi
    for kw in ({"clusters": list("aabb")}, {"strata": list("abab")}, {"weights": [1, 2, 3, 1]}):
        iv = paired_interval(np.ones(4), np.ones(4), **kw)
        assert iv.lo < 0 < iv.hi, kw


def test_all_flips_one_way_reach_the_bound():
    iv = paired_interval(np.ones(30), np.zeros(30))
    assert iv.value == -1 and iv.lo == -1 and -1 < iv.hi < -0.7
    assert mean_interval(np.ones(30)).hi == 1.0


def test_drop_is_the_negated_interval():
    iv = paired_interval(*pairs(2, 7, 20, 20))
    d = iv.neg()
    assert (d.value, d.lo, d.hi, d.method) == (-iv.value, -iv.hi, -iv.lo, iv.method)


def test_t_quantiles_match_tables():
    # Student t table, two-sided 95%: df 1, 2, 10, 30; df 120 and 1000 (Cornish-Fisher branch)
    for df, want in ((1, 12.7062), (2, 4.3027), (10, 2.2281), (30, 2.0423), (120, 1.9799), (1000, 1.9623)):
        assert t_quantile(df, 0.95) == pytest.approx(want, abs=1e-4)
    assert t_quantile(5, 0.99) == pytest.approx(4.0321, abs=1e-4)


def test_mcnemar_exact_against_the_binomial_sum():
    def exact(b, c):
        n, k = b + c, min(b, c)
        return min(1.0, float(2 * Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2**n)))

    for b, c in ((16, 6), (0, 5), (5, 0), (3, 3), (0, 0), (120, 80), (900, 1000), (1, 40)):
        assert mcnemar_exact(b, c) == pytest.approx(exact(b, c), rel=1e-10), (b, c)
    assert mcnemar_exact(16, 6) == pytest.approx(0.052479, abs=1e-6)  # Cavo et al. (exact conditional)


def test_holm_step_down():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([]) == [] and holm([0.2]) == [0.2]


def test_mover_mean_of_intervals():
    a, b = Interval(0.1, 0.0, 0.3, "tango"), Interval(0.3, 0.2, 0.5, "tango")
    m = mean_of([a, b])
    assert m.value == pytest.approx(0.2) and m.method == "mover"
    assert m.lo == pytest.approx(0.2 - math.sqrt(0.05**2 + 0.05**2))
    assert m.hi == pytest.approx(0.2 + math.sqrt(0.1**2 + 0.1**2))
    assert mean_of([a]) == Interval(0.1, 0.0, 0.3, "mover")
    with pytest.raises(ValueError):
        mean_of([])


def test_strata_average_the_stratum_means_with_mover():
    b, t = pairs(0, 5, 5, 0)  # stratum "h": 10 items, 5 forgotten
    b2, t2 = pairs(15, 0, 0, 15)  # stratum "s": 30 items, 15 learned
    strata = ["h"] * 10 + ["s"] * 30
    iv = paired_interval(np.r_[b, b2], np.r_[t, t2], strata=strata)
    assert iv.value == pytest.approx(0.0)  # (-0.5 + 0.5) / 2, pooled would be +10/40
    assert iv.method == "mover(tango)"
    h, s = paired_interval(b, t), paired_interval(b2, t2)
    assert iv.lo == pytest.approx(-math.sqrt(((h.value - h.lo) / 2) ** 2 + ((s.value - s.lo) / 2) ** 2))
    m = mean_interval(np.r_[b, b2], strata=strata)
    assert m.value == pytest.approx(0.5) and m.method == "mover(wilson)"


def test_clusters_that_move_together_widen_the_interval():
    n_cl, size = 40, 10
    diff = np.repeat(np.resize([1.0, 0.0, 0.0, -1.0, 0.0], n_cl), size)  # whole clusters flip
    base = np.where(diff < 0, 1.0, 0.0)
    tuned = base + diff
    flat = paired_interval(base, tuned)
    clus = paired_interval(base, tuned, clusters=np.repeat(np.arange(n_cl), size))
    assert clus.method == "tango-deff" and clus.value == flat.value
    assert clus.hi - clus.lo > 2.0 * (flat.hi - flat.lo)  # ~sqrt(10) in theory
    # independent items in clusters: the design effect is truncated at 1 (only the df factor remains)
    rng = np.random.default_rng(1)
    b = (rng.random(2000) < 0.5).astype(float)
    t = np.where(rng.random(2000) < 0.1, 1 - b, b)
    ref = paired_interval(b, t)
    ratios = [np.ptp((iv.lo, iv.hi)) / (ref.hi - ref.lo)
              for iv in (paired_interval(b, t, clusters=rng.integers(0, 57, 2000)) for _ in range(20))]
    assert min(ratios) >= 1.0 and np.mean(ratios) < 1.15


def test_weights_are_item_multiplicities():
    # prompt 1: 1 instruction followed by both; prompt 2: 3 instructions, base 0/3, tuned 1/3
    b, t, w = np.array([1.0, 0.0]), np.array([1.0, 1 / 3]), np.array([1.0, 3.0])
    iv = paired_interval(b, t, weights=w)
    assert iv.value == pytest.approx(0.25) and iv.method == "tango-deff"
    m = mean_interval(b, weights=w)
    assert m.value == pytest.approx(0.25) and m.method == "wilson-deff"
    frac = paired_interval(b, t, weights=[0.5, 1.5])  # not counts: a non-binary weighted mean
    assert frac.method == "t"


def test_non_binary_scores_use_the_t_interval():
    rng = np.random.default_rng(3)
    b = rng.random(50)
    t = np.clip(b + rng.normal(0.05, 0.1, 50), 0, 1)
    iv = paired_interval(b, t)
    d = t - b
    half = t_quantile(49, 0.95) * d.std(ddof=1) / math.sqrt(50)
    assert iv.method == "t" and (iv.lo, iv.hi) == pytest.approx((d.mean() - half, d.mean() + half))
    m = mean_interval(b)
    assert m.method == "t" and m.lo < b.mean() < m.hi


def test_bad_input_raises_value_error():
    for args, kw in ((([], []), {}), (([1, 0], [1]), {}), (([1, np.nan], [1, 0]), {}),
                     (([1, 0], [1, 0]), {"weights": [1, -1]}), (([1, 0], [1, 0]), {"clusters": ["a"]}),
                     (([1, 0], [1, 0]), {"strata": ["a", "b"], "weights": [0, 1]})):
        with pytest.raises(ValueError):
            paired_interval(*args, **kw)


def test_settings_name_the_project_methods():
    s = stats.settings()
    assert s == {"scheme": stats.SCHEME, "level": 0.95, "test": stats.TEST}
    assert stats.LEVEL == 0.95


def _coverage(n, p_up, p_down, level=0.95):
    """Exact coverage of paired_interval's tango for the true difference p_up - p_down."""
    from math import comb

    truth, cov = p_up - p_down, 0.0
    for u in range(n + 1):
        pu = comb(n, u) * p_up**u * (1 - p_up) ** (n - u)
        if pu < 1e-12:
            continue
        q = p_down / (1 - p_up)
        for d in range(n - u + 1):
            pr = pu * comb(n - u, d) * q**d * (1 - q) ** (n - u - d)
            if pr < 1e-12:
                continue
            lo, hi = tango(u, d, n, z_quantile(level))
            cov += pr * (lo - 1e-12 <= truth <= hi + 1e-12)
    return cov


@pytest.mark.parametrize("n,p_up,p_down", [(48, 0.05, 0.05), (48, 0.0, 0.1), (200, 0.01, 0.03), (200, 0.0, 0.1)])
def test_exact_coverage_is_near_nominal_where_flips_are_expected(n, p_up, p_down):
    # the old percentile bootstrap covered 39-90% in cells like these (issue 10)
    assert 0.93 <= _coverage(n, p_up, p_down) <= 0.975


def test_exact_coverage_errs_on_the_safe_side_with_few_flips():
    # 2.4 flips expected: discreteness allows ~95% or ~99%, never claiming certainty
    assert 0.95 <= _coverage(48, 0.05, 0.0) < 1.0
