"""The paired bootstrap engine: resampling of per-unit sums and percentile CIs, with no task logic.

forgetbench.stats.paired turns items into units (items, clusters, strata) and reads the replicates;
forgetbench.kl.estimate reuses the same engine for CIs over prompts. Results depend only on (units, n_boot,
rng): every fast path below draws the same random numbers as the plain gather and sums them exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from forgetbench.stats import KL_N_BOOT

CI_LEVEL = 0.95
# Units per chunk of the index matrix in the gather paths. The generator's stream does not depend
# on how a draw is split (so neither do the results): this only trades per-call overhead against
# allocation. Chunks of a few pages stay under malloc's mmap/trim thresholds, where larger
# temporaries get unmapped and faulted in again on every call (measured 2-3x slower on small tasks);
# at least _MIN_ROWS replicates per chunk bound the per-call overhead on large tasks.
_CHUNK = 1 << 15
_MIN_ROWS = 64
# Multinomial draws over distinct unit values cost ~16x a gather per category, so compress only
# when there are at least this many units per distinct value.
_COMPRESS_RATIO = 16
# seeded_sums keeps the resample counts of a few (units, replicates, seed) per process: at most this many
# cells (float64) per matrix, 8 MiB (32 prompts x 10,000 replicates: 2.5 MiB).
_COUNTS_MAX_CELLS = 1 << 20
_COUNTS_KEPT = 4


def percentile_ci(reps: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (numpy's default linear interpolation).

    Bit-identical to np.quantile(reps, [a, 1 - a]) (tests/test_metrics_pinned.py checks it): the same four
    order statistics, interpolated the same way, without np.quantile's generic machinery (which cost
    more than the bootstrap itself when the leaderboard recomputes thousands of CIs). For many replicates
    only the two tails are sorted (_tails), else everything: numpy's vectorized sort takes ~80-120 us for
    10,000 floats on a 2-core AVX2 CPU (a 4-kth partition measured slower).
    """
    a = (1.0 - level) / 2.0
    x = np.array(reps, dtype=float)  # a copy: sort works in place
    if x.ndim != 1 or x.size == 0 or np.isnan(x).any():
        lo, hi = np.quantile(x, [a, 1.0 - a])  # numpy's own NaN and shape rules
        return float(lo), float(hi)
    n = len(x)
    qs = _quantile_indexes(n, a)
    tails = _tails(x, qs) if n >= _TAIL_MIN else None
    if tails is not None:
        return tails
    x.sort()
    return _lerp(x[qs[0][1]], x[qs[0][2]], qs[0][0]), _lerp(x[qs[1][1]], x[qs[1][2]], qs[1][0])


_TAIL_MIN = 2000  # below this many replicates a full sort is as quick
_TAIL_STRIDE = 16  # every 16th replicate guesses where the tails start


def _tails(x: np.ndarray, qs) -> tuple[float, float] | None:
    """percentile_ci's four order statistics from the two tails alone: every value at or below a
    threshold, sorted, holds the smallest ones exactly (ties included), and likewise above; a threshold
    from a sorted sample of every 16th value leaves ~1.4x the values needed in each tail. None when a
    tail came out too short (the caller sorts everything): 4 small sorts instead of a full one."""
    n = len(x)
    (g_lo, i_lo, j_lo), (g_hi, i_hi, j_hi) = qs
    k_lo, k_hi = max(i_lo % n, j_lo % n) + 1, n - min(i_hi % n, j_hi % n)  # values needed in each tail
    sample = np.sort(x[::_TAIL_STRIDE])
    m = len(sample)
    lo_t = sample[min(m - 1, int(1.4 * k_lo * m / n) + 2)]
    hi_t = sample[max(0, m - 1 - int(1.4 * k_hi * m / n) - 2)]
    low, high = np.sort(x[x <= lo_t]), np.sort(x[x >= hi_t])
    if len(low) < k_lo or len(high) < k_hi:
        return None
    at_hi = lambda i: high[i % n - (n - len(high))]  # noqa: E731 - position i of the full sort, in `high`
    return _lerp(low[i_lo % n], low[j_lo % n], g_lo), _lerp(at_hi(i_hi), at_hi(j_hi), g_hi)


def _support_ci(counts: np.ndarray, values: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float] | None:
    """percentile_ci of the replicates that take values[u] counts[u] times (None: use percentile_ci).

    Replicates computed from a few distinct resampled sums take few distinct values; their order
    statistics come from a cumulative count instead of a partition of n_boot floats."""
    if np.isnan(values).any():
        return None
    order = np.argsort(values, kind="stable")
    v, cum = values[order], np.cumsum(counts[order])
    n = int(cum[-1])
    qs = _quantile_indexes(n, (1.0 - level) / 2.0)
    pick = v[np.searchsorted(cum, [k % n for q in qs for k in q[1:]], side="right")]
    return _lerp(pick[0], pick[1], qs[0][0]), _lerp(pick[2], pick[3], qs[1][0])


def _quantile_indexes(n: int, a: float) -> list[tuple[float, int, int]]:
    """(gamma, previous, next) order-statistic indexes of quantiles a and 1 - a of n values, exactly as
    numpy's "linear" method computes them (-1 = the last value)."""
    out = []
    for q in (a, 1.0 - a):
        v = (n - 1) * q
        i = j = -1 if v >= n - 1 else 0 if v < 0 else None
        if i is None:
            i = int(math.floor(v))
            j = i + 1
        out.append((v - i, i, j))
    return out


def _lerp(lo: float, hi: float, t: float) -> float:
    """numpy's _lerp: from the nearer end, so t = 0 and t = 1 give the endpoints exactly."""
    d = hi - lo
    return float(hi - d * (1 - t)) if t >= 0.5 else float(lo + d * t)


def resample_sums(units: np.ndarray, n_boot: int, rng: np.random.Generator, comp=False) -> np.ndarray:
    """(n_boot, c) column sums of `units` (m, c) over m units drawn with replacement.

    Only the multiset of drawn values matters, so when many units share a value (0/1 scores, small
    clusters) the draw is done exactly as a multinomial over the distinct rows: instant on 14k items.
    """
    m = len(units)
    comp = _compressed(units) if comp is False else comp  # the caller may have looked already
    if comp is not None:
        vals, inv = comp
        p = np.bincount(inv.reshape(-1), minlength=len(vals)) / m
        counts = rng.multinomial(m, p, size=n_boot).astype(float)
        return np.stack([counts @ vals[:, j] for j in range(vals.shape[1])], axis=1)
    # Index-matrix path. Columns travel in pairs as complex numbers: one random-access gather moves
    # two values, which is what bounds the speed here (~0.1 us per drawn unit).
    c = units.shape[1]
    padded = np.column_stack([units, np.zeros((m, c % 2))])
    packed = [padded[:, j] + 1j * padded[:, j + 1] for j in range(0, c, 2)]
    out = np.empty((n_boot, len(packed) * 2))
    step = max(_MIN_ROWS, _CHUNK // m)
    for s in range(0, n_boot, step):
        idx = rng.integers(0, m, size=(min(step, n_boot - s), m), dtype=np.int32)
        for j, col in enumerate(packed):
            z = np.take(col, idx).sum(axis=1)
            out[s : s + len(idx), 2 * j], out[s : s + len(idx), 2 * j + 1] = z.real, z.imag
    return out[:, :c]


def seeded_sums(units: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """resample_sums(units, n_boot, np.random.default_rng(seed)): the same draws, summed as
    counts @ units, where counts (n_boot, m) says how often each unit is drawn in each replicate.

    The index matrix depends only on (m, n_boot, seed), never on the values, so its counts are kept per
    process (resample_counts) and every further call is one small matrix product instead of n_boot * m
    random draws and gathers (the leaderboard recomputes the KL CIs of thousands of entries). The sums
    are the same up to rounding (another summation order: ~1e-16 relative), far inside the validator's
    tolerance. The multinomial path (many equal units), large matrices and non-finite or huge values
    (where 0 * inf or another overflow order would differ) go through resample_sums itself."""
    units = np.asarray(units, float)
    m = len(units)
    comp = _compressed(units)
    if (comp is not None or m == 0 or m * n_boot > _COUNTS_MAX_CELLS or not np.isfinite(units).all()
            or np.abs(units).max() * m >= 1e300):
        return resample_sums(units, n_boot, np.random.default_rng(seed), comp)
    return resample_counts(m, n_boot, seed) @ units


@lru_cache(maxsize=_COUNTS_KEPT)
def resample_counts(m: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, m) float64, read-only: how often each of m units is drawn in each replicate by
    resample_sums's index-matrix path with np.random.default_rng(seed) (the same draws, in the same
    chunks)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, m))
    step = max(_MIN_ROWS, _CHUNK // m)
    for s in range(0, n_boot, step):
        idx = rng.integers(0, m, size=(min(step, n_boot - s), m), dtype=np.int32)
        rows = len(idx)
        flat = (np.arange(rows, dtype=np.intp)[:, None] * m + idx).reshape(-1)
        out[s : s + rows] = np.bincount(flat, minlength=rows * m).reshape(rows, m)
    out.flags.writeable = False
    return out


def _compressed(units: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(distinct rows, inverse) when the multinomial draw applies (>= _COMPRESS_RATIO units per row)."""
    m = len(units)
    # Below 2 * _COMPRESS_RATIO units, compression needs every row equal: skip np.unique (costly next
    # to a small bootstrap) when a cheap test rules that out (finite rows only: NaN rows are np.unique's
    # business).
    if m < _COMPRESS_RATIO or (m < 2 * _COMPRESS_RATIO and not (units == units[0]).all()
                               and np.isfinite(units).all()):
        return None
    vals, inv = np.unique(units, axis=0, return_inverse=True)
    return (vals, inv) if len(vals) * _COMPRESS_RATIO <= m else None


def _pack_integers(units: np.ndarray):
    """Integer-valued units (0/1 scores, their differences, counts) as one integer code per unit, with
    each column's (offset, radix, weight); None when some value is not a small integer.

    Sums of such floats are exact in any order, so the sum of m drawn codes decodes to bit for bit the
    float column sums of the index-matrix path on the same draws, from one narrow gather."""
    m = len(units)
    if m == 0 or not np.isfinite(units).all() or (units != np.round(units)).any():
        return None
    if ((units == 0) & np.signbit(units)).any():
        return None  # a -0.0 would come back as +0.0
    lo, hi = units.min(axis=0), units.max(axis=0)
    radix = (hi - lo) * m + 1  # number of possible values of a column's sum over m drawn units
    if (np.abs(np.concatenate([lo, hi])) * m >= 2.0**52).any() or np.prod(radix) >= 2.0**62:
        return None
    radix = radix.astype(np.int64)
    weight = np.concatenate([[1], np.cumprod(radix[:-1])]).astype(np.int64)
    code = ((units - lo).astype(np.int64) * weight).sum(axis=1)
    # Every sum of m codes is below prod(radix): int32 when that fits (a quarter of the gather traffic).
    return code.astype(np.int32 if np.prod(radix) < 2.0**31 else np.int64), lo, radix, weight


def _resample_codes(packed, m: int, n_boot: int, rng: np.random.Generator):
    """Distinct resampled code sums: (counts, column sums (k, c)) plus the inverse (n_boot,) index."""
    code, lo, radix, weight = packed
    sums = np.empty(n_boot, code.dtype)
    step = max(_MIN_ROWS, _CHUNK // m)
    for s in range(0, n_boot, step):  # the same draws (in any chunking) as the index-matrix path
        idx = rng.integers(0, m, size=(min(step, n_boot - s), m), dtype=np.int32)
        # Indices are in range, so mode="wrap" (no bounds checks) gathers the same values; einsum's
        # row sums of narrow integers are several times faster than ndarray.sum here, and exact.
        np.einsum("ij->i", np.take(code, idx, mode="wrap"), out=sums[s : s + len(idx)])
    span = int(np.prod(radix))
    if span <= 4 * n_boot + 1024:
        cnt = np.bincount(sums, minlength=span)
        uniq = np.flatnonzero(cnt)
        lut = np.zeros(span, np.intp)
        lut[uniq] = np.arange(len(uniq))
        counts, inv = cnt[uniq], lut[sums]
    else:
        uniq, inv, counts = np.unique(sums, return_inverse=True, return_counts=True)
    cols = (uniq.astype(np.int64)[:, None] // weight) % radix + (lo * m).astype(np.int64)
    return counts, cols.astype(float), inv.reshape(-1)


@dataclass(frozen=True)
class Boot:
    """Point values and bootstrap replicates (raw tuned - base for `diff`) of one paired comparison."""

    base: float
    tuned: float
    diff: float
    base_reps: np.ndarray
    tuned_reps: np.ndarray
    diff_reps: np.ndarray
    by_stratum: dict[str, Boot] = field(default_factory=dict)
    # (counts, base, tuned, diff values) of the distinct replicates, when the integer path found them:
    # the CIs then need no partition of n_boot values.
    support: tuple | None = field(default=None, repr=False, compare=False)


def _boot_units(units: np.ndarray, n_boot: int, rng: np.random.Generator) -> Boot:
    # units columns: sum w*base, sum w*(tuned - base), sum w. The difference is its own column so
    # identical runs give replicates of exactly 0 and the CI is computed on the paired differences.
    tot = units.sum(axis=0)
    equal = (units[:, 2] == units[0, 2]).all()  # equal-size units: the denominator is fixed, skip it
    cols = units[:, :2] if equal else units
    comp = _compressed(cols)
    packed = _pack_integers(cols) if comp is None else None
    pb, pd = tot[0] / tot[2], tot[1] / tot[2]
    if packed is not None:
        counts, sums, inv = _resample_codes(packed, len(cols), n_boot, rng)
        den = np.full(len(sums), tot[2]) if equal else sums[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            b, d = sums[:, 0] / den, sums[:, 1] / den
        t = b + d
        return Boot(pb, pb + pd, pd, b[inv], t[inv], d[inv], support=(counts, b, t, d))
    if equal:
        r = resample_sums(cols, n_boot, rng, comp)
        r = np.column_stack([r, np.full(n_boot, tot[2])])
    else:
        r = resample_sums(units, n_boot, rng, comp)
    with np.errstate(divide="ignore", invalid="ignore"):
        b, d = r[:, 0] / r[:, 2], r[:, 1] / r[:, 2]
    return Boot(pb, pb + pd, pd, b, b + d, d)


def paired_bootstrap(
    base: np.ndarray,
    tuned: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    clusters: Sequence[Any] | None = None,
    strata: Sequence[Any] | None = None,
    n_boot: int = KL_N_BOOT,
    rng: np.random.Generator | None = None,
) -> Boot:
    """Paired (cluster/stratified) bootstrap of the micro mean of per-item scores; see module doc."""
    base, tuned = np.asarray(base, float), np.asarray(tuned, float)
    w = np.ones(len(base)) if weights is None else np.asarray(weights, float)
    rng = rng if rng is not None else np.random.default_rng(0)
    # Unit = (stratum, cluster); with no clusters every item is its own unit.
    cl = np.arange(len(base))
    if clusters is not None:
        cl = np.unique(np.asarray(clusters, str), return_inverse=True)[1].reshape(-1)
    if strata is None:
        names, st = [None], np.zeros(len(base), int)
    else:
        labels, st = np.unique(np.asarray(strata, str), return_inverse=True)
        names, st = [str(x) for x in labels], st.reshape(-1)
    parts = {}
    for k, name in enumerate(names):
        sel = st == k
        uid = np.unique(cl[sel], return_inverse=True)[1].reshape(-1)
        ws, bs, ts = w[sel], base[sel], tuned[sel]
        units = np.stack([np.bincount(uid, weights=c) for c in (ws * bs, ws * (ts - bs), ws)], axis=1)
        parts[name] = _boot_units(units, n_boot, rng)
    if strata is None:
        return parts[None]
    ps = list(parts.values())
    avg = lambda attr: sum(getattr(p, attr) for p in ps) / len(ps)  # noqa: E731
    return Boot(
        avg("base"), avg("tuned"), avg("diff"), avg("base_reps"), avg("tuned_reps"), avg("diff_reps"), parts
    )


