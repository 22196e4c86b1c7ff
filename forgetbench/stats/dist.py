"""Distribution helpers the intervals and tests need, in plain Python (no scipy: importing
scipy.special alone costs ~0.7 s, more than the leaderboard spends on all its intervals).

- normal and Student t quantiles (t: the closed-form CDF for integer df, Abramowitz & Stegun 26.7.3-4,
  inverted by bisection; for df >= 100 the Cornish-Fisher expansion A&S 26.7.5, error < 1e-10);
- the exact two-sided McNemar p-value (binomial tail of the discordant pairs, McNemar 1947);
- Holm's step-down adjustment (Holm 1979).
Every function is deterministic to the bit, so a recomputation anywhere reproduces stored numbers.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

_CF_DF = 100  # from this df on, the Cornish-Fisher expansion is used


@lru_cache(maxsize=64)
@lru_cache(maxsize=16)
def z_quantile(level: float) -> float:
    """Two-sided normal critical value: P(|Z| <= z) = level (cached: called for every interval)."""
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def _t_central(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer df >= 1 (A&S 26.7.3 for odd df, 26.7.4 for even)."""
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:
        term = total = 1.0
        for k in range(1, df // 2):  # 1 + (1/2)c^2 + (1*3)/(2*4)c^4 + ...
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return s * total
    if df == 1:
        return 2.0 * theta / math.pi
    c = math.cos(theta)
    term = total = c
    for k in range(1, (df - 1) // 2):  # c + (2/3)c^3 + (2*4)/(3*5)c^5 + ...
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return 2.0 / math.pi * (theta + s * total)


@lru_cache(maxsize=4096)
def t_quantile(df: float, level: float) -> float:
    """Two-sided Student t critical value: P(|T_df| <= t) = level (df rounded down, at least 1)."""
    z = z_quantile(level)
    if df >= _CF_DF:
        v = float(df)
        g1 = (z**3 + z) / 4
        g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
        g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
        g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
        return z + g1 / v + g2 / v**2 + g3 / v**3 + g4 / v**4
    k = max(1, int(df))
    lo, hi = z, 2.0 * z
    while _t_central(hi, k) < level:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if _t_central(mid, k) < level:
            lo = mid
        else:
            hi = mid
    return hi


def mcnemar_exact(forgotten: int, learned: int) -> float:
    """Two-sided exact McNemar p-value: 2 P(X <= min(b, c)), X ~ Binomial(b + c, 1/2), capped at 1."""
    b, c = int(forgotten), int(learned)
    n, k = b + c, min(b, c)
    if n == 0 or 2 * k + 1 >= n:  # b = c, or |b - c| = 1: P(X <= k) >= 1/2 exactly
        return 1.0
    # The largest term is P(X = k) (k < n/2); walk down from it: term(i-1) = term(i) * i / (n - i + 1).
    log_top = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2.0)
    rel = total = 1.0
    for i in range(k, 0, -1):
        rel *= i / (n - i + 1)
        total += rel
        if rel < 1e-18 * total:
            break
    return min(1.0, 2.0 * math.exp(log_top) * total)


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values (same order as given): reject H_i at alpha iff adjusted_i <= alpha."""
    order = sorted(range(len(pvalues)), key=lambda i: (pvalues[i], i))
    m, out, running = len(pvalues), [1.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out
