"""Score intervals of 0/1 data, the building blocks of forgetbench.stats.intervals: Tango's (1998)
interval for a paired difference, Wilson's (1927) for a proportion (both take effective, possibly
fractional counts), and the test for 0/1 scores that decides when they apply."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

_ROOT_TOL = 1e-13  # the score-interval limits are solved to this absolute precision
_SMALL = 256  # is_binary's switch to numpy
_BINARY = frozenset((0.0, 1.0))  # the 0/1 values


def _root(f, a: float, b: float) -> float:
    """The root of a decreasing f in [a, b] (f(a) >= 0 >= f(b)): Illinois regula falsi (superlinear),
    bisecting while an end value is infinite."""
    fa, fb, side = f(a), f(b), 0
    for _ in range(200):
        if b - a <= _ROOT_TOL:
            break
        c = 0.5 * (a + b)
        if math.isfinite(fa) and math.isfinite(fb) and fa != fb:
            x = (a * fb - b * fa) / (fb - fa)
            if a < x < b:
                c = x
        fc = f(c)
        if fc == 0:
            return c
        if fc > 0:
            a, fa = c, fc
            if side == 1:
                fb *= 0.5
            side = 1
        else:
            b, fb = c, fc
            if side == -1:
                fa *= 0.5
            side = -1
    return 0.5 * (a + b)


def _bracket(f, est: float, step: float, end: float) -> float:
    """The root of f between est and end (f changes sign there), searched from est in growing steps."""
    a = est
    while True:
        b = est + step
        if (b - end) * step >= 0:
            b = end
        if f(b) * f(a) <= 0 or b == end:
            return _root(f, a, b) if step > 0 else _root(f, b, a)
        a, step = b, 2 * step


def tango(up: float, down: float, n: float, z: float) -> tuple[float, float]:
    """Tango (1998) score interval for delta = p(up) - p(down) of paired binary data: n pairs, `up`
    of them 0 -> 1 and `down` 1 -> 0 (counts may be fractional: effective counts).

    Inverts Z(d) = (up - down - n d) / sqrt(n (2 p~ + d (1 - d))), p~ the MLE of p(down) restricted
    to delta = d. With no discordant pair the limits are -+z^2 / (n + z^2), never [0, 0]."""
    # A pure function of four numbers, and the same few counts recur across the tasks and entries a
    # leaderboard build recomputes: solved once per process (floats in, so the cache never hands
    # back another caller's numpy scalars).
    return _tango(float(up), float(down), float(n), float(z))


@lru_cache(maxsize=1 << 14)
def _tango(up: float, down: float, n: float, z: float) -> tuple[float, float]:
    est = (up - down) / n

    def score(d: float) -> float:
        bq = -up - down + (2 * n - up + down) * d
        cq = -down * d * (1 - d)
        p = (math.sqrt(max(bq * bq - 8 * n * cq, 0.0)) - bq) / (4 * n)
        v = n * (2 * p + d * (1 - d))
        num = up - down - n * d
        if v <= 0:
            return math.copysign(math.inf, num) if num else 0.0
        return num / math.sqrt(v)

    # First steps of the size of a Wald half-width with one pseudo-flip: limits are usually that close.
    step = z * math.sqrt((up + down + 1) / n**2)
    lo = -1.0 if est <= -1 else _bracket(lambda d: score(d) - z, est, -step, -1.0)
    hi = 1.0 if est >= 1 else _bracket(lambda d: score(d) + z, est, step, 1.0)
    return max(-1.0, min(lo, est)), min(1.0, max(hi, est))


def wilson(x: float, n: float, z: float) -> tuple[float, float]:
    """Wilson (1927) score interval for a proportion x / n (x may be fractional: effective counts)."""
    z2 = z * z
    centre = (x + z2 / 2) / (n + z2)
    half = z * math.sqrt(max(x * (n - x) / n, 0.0) + z2 / 4) / (n + z2)
    return max(0.0, centre - half), min(1.0, centre + half)


def is_binary(x: np.ndarray) -> bool:
    if x.size <= _SMALL:  # a set of Python floats: ~6x faster than three ufuncs on a short array
        return set(x.tolist()) <= _BINARY
    return bool(np.count_nonzero((x == 0) | (x == 1)) == x.size)
