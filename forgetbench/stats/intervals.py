"""The interval methods (see the package docstring for the choices and references).

Units: an item is its own unit unless `clusters` groups items (mmlu: subject); `weights` are item
multiplicities (ifeval instruction-level: the number of instructions a prompt's score averages).
A sample counts as *binary* when every score is 0/1, or, with weights, when every weight and every
weight x score is a whole number (each item is then `weight` 0/1 sub-items sharing the item's unit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from forgetbench.stats.dist import t_quantile, z_quantile
from forgetbench.stats.score import is_binary, tango, wilson

_EPS = 1e-9  # how far from a whole number a weighted count may be and still count as one
_ZERO_SE = 1e-12  # a standard error this small relative to the scores' size is rounding: treated as zero


@dataclass(frozen=True)
class Interval:
    """A point estimate, its confidence limits and the name of the method that produced them."""

    value: float
    lo: float
    hi: float
    method: str

    def neg(self) -> Interval:
        """The interval of -value (a drop from a gain)."""
        return Interval(-self.value, -self.hi, -self.lo, self.method)


# ---- building blocks ----------------------------------------------------------------------------------


def mover(values: Sequence[float], los: Sequence[float], his: Sequence[float], coef: Sequence[float]):
    """MOVER (Zou & Donner 2008; Newcombe 2011): limits of sum(c_k theta_k) over independent estimates
    from each estimate's own limits (square-and-add of the distances to the limits)."""
    est = sum(c * v for c, v in zip(coef, values))
    dl = du = 0.0
    for c, v, lo, hi in zip(coef, values, los, his):
        a, b = (c * (v - lo), c * (hi - v)) if c >= 0 else (c * (v - hi), c * (lo - v))
        dl += a * a
        du += b * b
    return est, est - math.sqrt(dl), est + math.sqrt(du)


def _whole(x: np.ndarray) -> bool:
    return bool(np.all(np.abs(x - np.round(x)) <= _EPS))


@dataclass(frozen=True)
class _Sample:
    """One stratum's items reduced to units: per-unit weighted sums of the statistic and of the weights."""

    n: float  # sum of weights: the number of (sub-)items
    m: int  # number of units with a positive weight
    sums: np.ndarray  # per unit: sum of w * statistic
    wsum: np.ndarray  # per unit: sum of w

    def robust_var(self, est: float) -> float:
        """Cluster-robust variance of the ratio mean sum(sums) / n with Bell & McCaffrey's (2002) CR2
        bias reduction: each unit's squared residual divided by 1 - its leverage w_u / n (for equal
        units this is the usual m / (m - 1) factor)."""
        h = self.wsum / self.n
        if self.m < 2 or h.max() >= 1:
            return 0.0
        r = self.sums - est * self.wsum
        return float(np.sum(r * r / (1 - h)) / self.n**2)

    def df(self) -> float:
        """Bell & McCaffrey's (2002) Satterthwaite degrees of freedom of robust_var under independent
        items: m - 1 for equal units, fewer when a few large units dominate (depends on sizes only)."""
        w, n = self.wsum, self.n
        g = 1 / (1 - w / n)
        tr2 = np.sum(g * g * w * w) - 2 * np.sum(g * g * w**3) / n + np.sum(g * w * w) ** 2 / n**2
        return min(self.m - 1.0, n * n / tr2 + 1e-9)


def _sample(stat: np.ndarray, w: np.ndarray, unit: np.ndarray | None) -> _Sample:
    if unit is None:
        sums, wsum = w * stat, w
    else:
        m = int(unit.max()) + 1
        sums, wsum = np.bincount(unit, w * stat, m), np.bincount(unit, w, m)
    keep = wsum > 0
    return _Sample(float(w.sum()), int(keep.sum()), sums[keep], wsum[keep])


def _deff(s: _Sample, v_robust: float, v_srs: float, level: float) -> float:
    """Korn & Graubard (1998) design effect: robust / binomial variance, truncated at 1, times the
    degrees-of-freedom factor (t_df / t_{n-1})^2 (df: Sample.df, at most units - 1; n items)."""
    d = max(1.0, v_robust / v_srs) if v_srs > 0 and s.m > 1 else 1.0
    if s.m > 1 and s.m < s.n:
        d *= (t_quantile(s.df(), level) / t_quantile(max(s.n - 1, 1), level)) ** 2
    return d


def _t_limits(est: float, s: _Sample, level: float) -> tuple[float, float] | None:
    """Student t interval on the unit means (CR2 variance, Bell-McCaffrey df; units - 1 for equal
    units); None when it would have zero width."""
    se = math.sqrt(s.robust_var(est))
    if s.m < 2 or se <= _ZERO_SE * max(1.0, float(np.abs(s.sums).max() / s.wsum.max())):
        return None  # equal differences (up to rounding): no spread to scale an interval by
    half = t_quantile(s.df(), level) * se
    return est - half, est + half


def _span(*xs: np.ndarray) -> tuple[float, float]:
    """Score range used to scale non-binary scores when their t interval degenerates: [0, 1] widened to
    cover every observed score."""
    lo = min(0.0, *(float(x.min()) for x in xs))
    hi = max(1.0, *(float(x.max()) for x in xs))
    return lo, hi


# ---- independent unweighted 0/1 items: everything follows from four counts ---------------------------


def binary_table(base: np.ndarray, tuned: np.ndarray) -> tuple[int, int, int, int] | None:
    """(n00, n01, n10, n11) of paired scores (n01: base 0, tuned 1) when every score is 0 or 1, else
    None. For independent, unweighted 0/1 pairs these counts are all the statistics need: their
    intervals are tango_interval / wilson_interval of them, exactly what paired_interval and
    mean_interval compute from the items (a leaderboard build recomputes ~10^5 such tasks)."""
    if not (is_binary(base) and is_binary(tuned)):
        return None
    kb, kt, n11 = int(np.count_nonzero(base)), int(np.count_nonzero(tuned)), int(np.count_nonzero(base * tuned))
    return len(base) - kb - kt + n11, kt - n11, kb - n11, n11


def tango_interval(up: int, down: int, n: int, level: float) -> Interval:
    """"tango": the paired difference of n independent 0/1 pairs, `up` of them 0 -> 1 and `down` 1 -> 0."""
    lo, hi = tango(up, down, n, z_quantile(level))
    return Interval((up - down) / n, lo, hi, "tango")


def wilson_interval(k: int, n: int, level: float) -> Interval:
    """"wilson": the rate of k successes in n independent 0/1 items."""
    lo, hi = wilson(k, n, z_quantile(level))
    return Interval(k / n, lo, hi, "wilson")


# ---- one stratum ----------------------------------------------------------------------------------------


def _paired_one(b: np.ndarray, t: np.ndarray, w: np.ndarray | None, unit: np.ndarray | None,
                level: float) -> Interval:
    z = z_quantile(level)
    d = t - b
    if w is None and unit is None and is_binary(b) and is_binary(t):
        return tango_interval(int(np.count_nonzero(d > 0)), int(np.count_nonzero(d < 0)), len(d), level)
    ww = np.ones(len(d)) if w is None else w
    s = _sample(d, ww, unit)
    est = float(s.sums.sum() / s.n)
    counts = is_binary(b) and is_binary(t) if w is None else (_whole(ww) and _whole(ww * b) and _whole(ww * t))
    if counts:
        up, down = float(np.dot(ww, np.maximum(d, 0))), float(np.dot(ww, np.maximum(-d, 0)))
        v_srs = ((up + down) / s.n - est * est) / s.n
        f = _deff(s, s.robust_var(est), v_srs, level)
        lo, hi = tango(up / f, down / f, s.n / f, z)
        return Interval(est, lo, hi, "tango-deff")
    lim = _t_limits(est, s, level)
    if lim is not None:
        return Interval(est, *lim, "t")
    lo_b, hi_b = _span(b, t)
    r = hi_b - lo_b
    up, down = float(np.dot(ww, np.maximum(d, 0))) / r, float(np.dot(ww, np.maximum(-d, 0))) / r
    lo, hi = tango(up, down, s.n, z)
    return Interval(est, r * lo, r * hi, "tango-range")


def _mean_one(x: np.ndarray, w: np.ndarray | None, unit: np.ndarray | None, level: float) -> Interval:
    z = z_quantile(level)
    if w is None and unit is None and is_binary(x):
        return wilson_interval(int(np.count_nonzero(x)), len(x), level)
    ww = np.ones(len(x)) if w is None else w
    s = _sample(x, ww, unit)
    est = float(s.sums.sum() / s.n)
    if is_binary(x) if w is None else (_whole(ww) and _whole(ww * x)):
        f = _deff(s, s.robust_var(est), est * (1 - est) / s.n, level)
        lo, hi = wilson(est * s.n / f, s.n / f, z)
        return Interval(est, min(lo, est), max(hi, est), "wilson-deff")
    lim = _t_limits(est, s, level)
    if lim is not None:
        return Interval(est, *lim, "t")
    lo_b, hi_b = _span(x)
    r = hi_b - lo_b
    lo, hi = wilson((est - lo_b) / r * s.n, s.n, z)
    return Interval(est, lo_b + r * lo, lo_b + r * hi, "wilson-range")


# ---- public entry points ------------------------------------------------------------------------------


def _scores(arrays) -> list[np.ndarray]:
    xs = [np.asarray(a, float).reshape(-1) for a in arrays]
    n = len(xs[0])
    if n == 0 or any(len(x) != n for x in xs):
        raise ValueError("scores must be non-empty and of equal length")
    # A finite sum means finite elements (an inf or nan anywhere makes the sum inf or nan); only a sum
    # that overflowed needs the element-wise look.
    if not all(math.isfinite(x.sum()) or np.isfinite(x).all() for x in xs):
        raise ValueError("scores must be finite")
    return xs


def _prepare(arrays, clusters, strata, weights):
    xs = _scores(arrays)
    n = len(xs[0])
    w = None
    if weights is not None:
        w = np.asarray(weights, float).reshape(-1)
        if len(w) != n or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError("weights must be finite, non-negative, not all zero, one per item")
    unit = None
    if clusters is not None:
        if len(clusters) != n:
            raise ValueError("one cluster label per item")
        unit = np.unique(np.asarray(clusters, str), return_inverse=True)[1].reshape(-1)
    if strata is None:
        return xs, [(np.arange(n), None)], w, unit
    if len(strata) != n:
        raise ValueError("one stratum label per item")
    labels, st = np.unique(np.asarray(strata, str), return_inverse=True)
    st = st.reshape(-1)
    return xs, [(np.flatnonzero(st == k), str(lab)) for k, lab in enumerate(labels)], w, unit


def _sub(idx: np.ndarray, w: np.ndarray | None, unit: np.ndarray | None):
    """Weights and dense unit ids of one stratum's items (None stays None)."""
    ws = None if w is None else w[idx]
    if ws is not None and ws.sum() <= 0:
        raise ValueError("every stratum needs a positive total weight")
    us = None if unit is None else np.unique(unit[idx], return_inverse=True)[1].reshape(-1)
    return ws, us


def combine_strata(parts: list[Interval]) -> Interval:
    """Unweighted mean over strata (the task's aggregate), limits by MOVER; `parts` in label order."""
    if len(parts) == 1:
        return parts[0]
    k = len(parts)
    est, lo, hi = mover([p.value for p in parts], [p.lo for p in parts], [p.hi for p in parts], [1.0 / k] * k)
    return Interval(est, lo, hi, "mover(" + ",".join(sorted({p.method for p in parts})) + ")")


def paired_by_stratum(base, tuned, *, clusters: Sequence[Any] | None = None, strata: Sequence[Any] | None = None,
                      weights=None, level: float = 0.95) -> tuple[Interval, dict[str, Interval]]:
    """paired_interval plus each stratum's own interval (empty without strata)."""
    if clusters is None and strata is None and weights is None:  # the common case, without index copies:
        return _paired_one(*_scores((base, tuned)), None, None, level), {}  # a leaderboard build makes ~10^5
    (b, t), groups, w, unit = _prepare((base, tuned), clusters, strata, weights)
    parts = {}
    for idx, name in groups:
        ws, us = _sub(idx, w, unit)
        parts[name] = _paired_one(b[idx], t[idx], ws, us, level)
    return combine_strata(list(parts.values())), ({} if strata is None else parts)


def mean_by_stratum(x, *, clusters: Sequence[Any] | None = None, strata: Sequence[Any] | None = None,
                    weights=None, level: float = 0.95) -> tuple[Interval, dict[str, Interval]]:
    """mean_interval plus each stratum's own interval (empty without strata)."""
    if clusters is None and strata is None and weights is None:
        return _mean_one(_scores((x,))[0], None, None, level), {}
    (xs,), groups, w, unit = _prepare((x,), clusters, strata, weights)
    parts = {}
    for idx, name in groups:
        ws, us = _sub(idx, w, unit)
        parts[name] = _mean_one(xs[idx], ws, us, level)
    return combine_strata(list(parts.values())), ({} if strata is None else parts)
