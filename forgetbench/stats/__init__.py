"""forgetbench's confidence intervals and paired tests: closed-form methods with nominal coverage.

    from forgetbench.stats import paired_interval
    iv = paired_interval(base_scores, tuned_scores)   # iv.value = mean(tuned - base), iv.lo, iv.hi, iv.method

Every interval carries the name of the method that produced it (stored next to it everywhere).
Coverage of each method on the cases below: benchmarks/coverage.py (table in README.md, Statistics).

Paired 0/1 scores, items independent: **"tango"**, the asymptotic score interval for a difference of
paired proportions of Tango (1998, Statistics in Medicine 17:891-908), recommended by Fagerland,
Lydersen & Laake (2014, Statistics in Medicine 33:2850-2875). It inverts the score test with the
restricted maximum-likelihood nuisance parameter, so it stays valid with zero or few discordant pairs
(then it is asymmetric and wider), and with no discordant pair it is [-z²/(n+z²), z²/(n+z²)], never
[0, 0]. It depends on the data only through (forgotten, learned, n).

Clustered items (mmlu: subject) and weighted items (ifeval instruction-level: a prompt's score is the
mean of its instructions, weight = their number): **"tango-deff"**, the same score interval on effective
counts: counts and n divided by a design effect in the manner of Korn & Graubard (1998, Survey
Methodology 24:193-201), recommended for clustered binomial data by Dean & Pagano (2015, Journal of
Survey Statistics and Methodology 3:484-503). deff = (linearization variance of the paired mean
difference over units) / (the binomial variance of n independent pairs), truncated at 1 because the
ratio is unstable when flips are few, times (t_{units-1} / t_{n-1})² for the few degrees of freedom of
few clusters. For weighted items, discordance is counted at the sub-item level (weight x score
difference), the least the per-item scores allow.

Strata (safety: the aggregate is the mean of the harmful and the safe rate): each stratum gets its own
interval, combined into the interval of their mean by **MOVER** ("mover(...)"; Zou & Donner 2008,
Statistics in Medicine 27:1693-1702; Newcombe 2011, Communications in Statistics - Theory and Methods
40:1743-1767), which recovers each estimate's variance from its own limits and keeps their asymmetry.
The mean drop over probes (independent item sets) is the MOVER mean of the probes' drop intervals.

Non-binary scores (no task of the registry has them; lm-eval sample files may): **"t"**, Student's t
interval on the (cluster) means of the paired differences with units - 1 degrees of freedom. Scores
that take many values make the mean nearly normal quickly; its error for skewed data shrinks as
1/sqrt(n) and is documented (Boos & Hughes-Oliver 2000, The American Statistician 54:121-128), and
unlike a bootstrap it needs no replicates. When every difference is equal (the t interval would have
zero width) the score interval on the score range is used instead ("tango-range").

Marginal rates (the base and tuned columns): **"wilson"** (Wilson 1927; Brown, Cai & DasGupta 2001,
Statistical Science 16:101-133), "wilson-deff" with the same design effect, "t"/"wilson-range" for
non-binary scores, "mover(...)" over strata.

Paired tests: the exact two-sided McNemar test on the flips (items right for one model and wrong for
the other, "right" = score >= 0.5), and Holm's (1979) step-down adjustment across a pair's probes; a
probe "dropped" only where its adjusted p-value is below 1 - level. The McNemar test treats items as
independent (clusters are not modelled; for mmlu this makes it liberal when subjects forget together).

The bootstrap stays where it is the right tool: the forward KL estimates (forgetbench.kl.estimate) are ratios of
sums of continuous, skewed per-sequence values with completions grouped by prompt; they have no
closed-form interval, and the prompt-level percentile bootstrap needs no model of their distribution.
Item scores are discrete and bounded, where the percentile bootstrap fails (few flips: [0, 0]).

Simplifications: items are exchangeable within a stratum (clusters drawn from a population of clusters,
which makes intervals conservative for a fixed set of subjects); the design effect is truncated at 1
(conservative when clusters are negatively correlated); strata and probes are independent.
"""

from __future__ import annotations

from typing import Any, Sequence

from forgetbench.stats.dist import holm, mcnemar_exact, t_quantile, z_quantile
from forgetbench.stats.intervals import (
    Interval, binary_table, combine_strata, mean_by_stratum, mover, paired_by_stratum, tango_interval, wilson_interval,
)

LEVEL = 0.95
SCHEME = "forgetbench-intervals/1"  # bump when any method below changes what it computes
METHODS = ("tango", "tango-deff", "t", "tango-range", "wilson", "wilson-deff", "wilson-range", "mover")
TEST = "mcnemar-exact+holm"
KL_N_BOOT, KL_BOOT_SEED = 10000, 0  # the forward-KL percentile bootstrap (forgetbench.kl.estimate.summarize)


def settings() -> dict:
    """The project's interval settings, as results.json stores them (`intervals`) and as validate
    expects them; an entry with other settings was made by another forgetbench."""
    return {"scheme": SCHEME, "level": LEVEL, "test": TEST}


def paired_interval(base, tuned, *, clusters: Sequence[Any] | None = None, strata: Sequence[Any] | None = None,
                    weights=None, level: float = LEVEL) -> Interval:
    """Interval of delta = mean(tuned) - mean(base) over paired items (callers flip the sign for drops).

    With strata the aggregate is the unweighted mean of the per-stratum means; with weights, the
    weighted (micro) mean; clusters group items whose scores move together."""
    return paired_by_stratum(base, tuned, clusters=clusters, strata=strata, weights=weights, level=level)[0]


def mean_interval(x, *, clusters: Sequence[Any] | None = None, strata: Sequence[Any] | None = None,
                  weights=None, level: float = LEVEL) -> Interval:
    """Interval of one model's aggregate score (same conventions as paired_interval)."""
    return mean_by_stratum(x, clusters=clusters, strata=strata, weights=weights, level=level)[0]


def mean_of(intervals: Sequence[Interval]) -> Interval:
    """MOVER interval of the plain mean of independent estimates (the mean drop over probes)."""
    k = len(intervals)
    if k == 0:
        raise ValueError("mean of no intervals")
    est, lo, hi = mover([i.value for i in intervals], [i.lo for i in intervals], [i.hi for i in intervals],
                        [1.0 / k] * k)
    return Interval(est, lo, hi, "mover")


__all__ = [
    "Interval", "KL_BOOT_SEED", "KL_N_BOOT", "LEVEL", "METHODS", "SCHEME", "TEST", "binary_table", "combine_strata", "holm",
    "mcnemar_exact", "mean_by_stratum", "mean_interval", "mean_of", "paired_by_stratum", "paired_interval",
    "settings", "t_quantile", "tango_interval", "wilson_interval", "z_quantile",
]
