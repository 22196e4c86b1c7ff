"""Paired statistics of base vs tuned on each task: gain/drop with confidence intervals, flips, tests.

Conventions (the report's numbers mean exactly this):
- Items are paired by `doc_hash`; base and tuned must have scored the same multiset of rows.
- Aggregate of a task = micro mean of the per-item scores (weighted when the item carries a weight,
  see below); when items carry a `stratum`, the aggregate is the unweighted mean of per-stratum
  aggregates (safety: mean of the harmful-refusal rate and the safe-compliance rate), so the
  relative size of the strata does not decide the headline number.
- delta is signed so that positive = what the role cares about: gain (tuned - base) on a target,
  drop (base - tuned) on a probe. With `higher_is_better: false` both signs flip (a target gains
  when the metric goes down; a probe drops when it goes up). base/tuned are always raw values.
- CIs: forgetbench.stats (methods, references and simulated coverage there): a score interval for
  the paired difference (Tango) on the items, with a design effect when items carry a `cluster` or a
  weight, MOVER over strata; Wilson intervals for the base and tuned rates. Each Estimate names its
  method.
- forgotten = items right for base and wrong for tuned, learned = the reverse; "right" means
  score >= 0.5 (scores are 0/1 for the built-in tasks), or score < 0.5 when lower is better.
  p_mcnemar is the exact McNemar test of forgotten vs learned; across a pair's probes it is
  Holm-adjusted (p_holm), and a probe's verdict is "dropped" only where the adjusted test rejects.
- Weights: an extra metric `K` whose items also carry `K + "__n"` (e.g. ifeval's inst_level_* stored
  as the per-prompt mean of the instruction list, plus the instruction count) is aggregated as
  sum(n_i * x_i) / sum(n_i), i.e. lm-eval's micro mean over instructions; the prompt is the unit.
  The same applies to the primary metric if its key has a "__n" companion.
- mean_drop: the mean of the probes' drops, its CI the MOVER combination of theirs (probes are
  disjoint item sets).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from forgetbench import stats
from forgetbench.errors import UserError
from forgetbench.records import Estimate, ItemResult, ModelRef, PairReport, TaskDelta, TaskRun, TaskSpec


def _est(iv: stats.Interval) -> Estimate:
    return Estimate(float(iv.value), float(iv.lo), float(iv.hi), iv.method)


def interval_of(e: Estimate) -> stats.Interval:
    return stats.Interval(e.value, e.lo, e.hi, e.method)


def _pair_items(spec: TaskSpec, base: TaskRun, tuned: TaskRun) -> list[tuple[ItemResult, ItemResult]]:
    """Pair by doc_hash; duplicate rows (same hash) pair in doc_id order."""
    cb, ct = Counter(i.doc_hash for i in base.items), Counter(i.doc_hash for i in tuned.items)
    if cb != ct:
        only_b, only_t = sum((cb - ct).values()), sum((ct - cb).values())
        raise UserError(
            f"task {spec.name}: mismatched inputs: {only_b} base item(s) and {only_t} tuned item(s) have no "
            "counterpart (the two models were scored on different rows; rerun both with the same data/--limit)"
        )
    if not base.items:
        raise UserError(f"task {spec.name}: no scored items")
    order = lambda items: sorted(items, key=lambda i: (i.doc_hash, i.doc_id))  # noqa: E731
    pairs = list(zip(order(base.items), order(tuned.items)))
    for b, t in pairs:
        if (b.cluster, b.stratum) != (t.cluster, t.stratum):
            raise UserError(
                f"task {spec.name}: mismatched inputs: item {b.doc_hash[:12]} has a different cluster/stratum"
            )
    return sorted(pairs, key=lambda p: p[0].doc_id)


def _resolve(key: str, metrics: dict) -> str | None:
    """lm-eval per-sample key for `key` in an item's metrics: exact, "key,none", or the only "key,<filter>"."""
    for k in (key, f"{key},none"):
        if k in metrics:
            return k
    hits = [k for k in metrics if k.split(",")[0] == key and not k.endswith("__n")]
    return hits[0] if len(hits) == 1 else None


@dataclass(frozen=True)
class Columns:
    """A task's paired items as columns, one position per pair (base and tuned scored the same row): what
    the statistics read. task_delta builds it from two TaskRuns; the leaderboard's validator builds it
    straight from an entry's items (each already holds both sides) without making ItemResults."""

    hashes: Sequence[str]  # doc_hash per pair (error messages)
    base_scores: Sequence[float]
    tuned_scores: Sequence[float]
    base_metrics: Sequence[dict]
    tuned_metrics: Sequence[dict]
    clusters: Sequence[str | None]
    strata: Sequence[str | None]


def columns(pairs: Sequence[tuple[ItemResult, ItemResult]]) -> Columns:
    return Columns([b.doc_hash for b, _ in pairs], [b.score for b, _ in pairs], [t.score for _, t in pairs],
                   [b.metrics for b, _ in pairs], [t.metrics for _, t in pairs], [b.cluster for b, _ in pairs],
                   [b.stratum for b, _ in pairs])


def _values(spec: TaskSpec, cols: Columns, key: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Base/tuned per-item values (the primary score when key is None) and optional weights."""
    def get(metrics: Sequence[dict], k: str) -> np.ndarray:
        try:
            return np.array([float(m[k]) for m in metrics])
        except KeyError:
            j = next(j for j, m in enumerate(metrics) if k not in m)
            raise UserError(f"task {spec.name}: item {cols.hashes[j][:12]} lacks metric {k!r}") from None

    if key is None:
        xb = np.array(cols.base_scores, float)
        xt = np.array(cols.tuned_scores, float)
    else:
        xb, xt = get(cols.base_metrics, key), get(cols.tuned_metrics, key)
    if not (np.isfinite(xb).all() and np.isfinite(xt).all()):
        raise UserError(f"task {spec.name}: non-finite scores for {key or 'the primary metric'}")
    wkey = None if key is None else f"{key}__n"
    if key is None:
        k = _resolve(spec.primary_metric, cols.base_metrics[0])
        wkey = f"{k}__n" if k else None
    w = None
    if wkey and wkey in cols.base_metrics[0]:
        w = get(cols.base_metrics, wkey)
        if (w < 0).any() or w.sum() <= 0:
            raise UserError(f"task {spec.name}: bad instruction counts in {wkey!r}")
    return xb, xt, w


def _delta(spec, role, metric, xb, xt, w, clusters, strata, sign) -> TaskDelta:
    """One row: both rates and the signed delta with their intervals, flips and McNemar's p."""
    if w is None and clusters is None:
        tables = _tables(xb, xt, strata)
        if tables is not None:
            return _table_delta(spec, role, metric, tables, sign)
    right = (lambda x: x >= 0.5) if spec.higher_is_better else (lambda x: x < 0.5)
    rb, rt = right(xb), right(xt)
    opts = {"clusters": clusters, "strata": strata, "weights": w}
    d = stats.paired_interval(xb, xt, **opts)
    forgotten, learned = int((rb & ~rt).sum()), int((~rb & rt).sum())
    return TaskDelta(
        task=spec.name,
        role=role,
        metric=metric,
        n=len(xb),
        base=_est(stats.mean_interval(xb, **opts)),
        tuned=_est(stats.mean_interval(xt, **opts)),
        delta=_est(d if sign > 0 else d.neg()),
        forgotten=forgotten,
        learned=learned,
        p_mcnemar=stats.mcnemar_exact(forgotten, learned),
    )


def _tables(xb: np.ndarray, xt: np.ndarray, strata: np.ndarray | None) -> list[tuple[int, int, int, int]] | None:
    """The 2x2 table of each stratum in label order (one without strata), None unless every score is 0/1."""
    if strata is None:
        tables = [stats.binary_table(xb, xt)]
    else:
        tables = [stats.binary_table(xb[sel], xt[sel]) for sel in (strata == s for s in sorted(set(strata.tolist())))]
    return None if None in tables else tables


def _table_delta(spec, role, metric, tables: list[tuple[int, int, int, int]], sign: float) -> TaskDelta:
    """_delta of independent unweighted 0/1 pairs from their 2x2 tables (stats.binary_table), one per
    stratum: the same numbers as the item-level path (per-stratum tango / wilson intervals combined by
    stats.combine_strata) from four counts each instead of array passes over the items."""
    d = stats.combine_strata([stats.tango_interval(t[1], t[2], sum(t), stats.LEVEL) for t in tables])  # n01 up, n10 down
    base = stats.combine_strata([stats.wilson_interval(t[2] + t[3], sum(t), stats.LEVEL) for t in tables])
    tuned = stats.combine_strata([stats.wilson_interval(t[1] + t[3], sum(t), stats.LEVEL) for t in tables])
    up, down = sum(t[1] for t in tables), sum(t[2] for t in tables)
    # right = score 1 (or 0 when lower is better): forgotten = right for base, wrong for tuned
    forgotten, learned = (down, up) if spec.higher_is_better else (up, down)
    return TaskDelta(task=spec.name, role=role, metric=metric, n=sum(map(sum, tables)), base=_est(base),
                     tuned=_est(tuned), delta=_est(d if sign > 0 else d.neg()), forgotten=forgotten, learned=learned,
                     p_mcnemar=stats.mcnemar_exact(forgotten, learned))


def task_delta(spec: TaskSpec, role: str, base: TaskRun, tuned: TaskRun) -> TaskDelta:
    """The paired comparison of one task: primary metric, each stratum and each extra metric."""
    if base.task != tuned.task:
        raise UserError(f"mismatched inputs: pairing runs of {base.task!r} and {tuned.task!r}")
    return columns_delta(spec, role, columns(_pair_items(spec, base, tuned)))


def columns_delta(spec: TaskSpec, role: str, cols: Columns) -> TaskDelta:
    """task_delta of paired columns (at least one pair)."""
    if role not in ("target", "probe"):
        raise ValueError(f"role must be target or probe, not {role!r}")
    clusters, strata = list(cols.clusters), list(cols.strata)
    for label, vals in (("cluster", clusters), ("stratum", strata)):
        if len({v is None for v in vals}) > 1:
            raise UserError(f"task {spec.name}: some items have a {label} and some do not")
    clusters = None if clusters[0] is None else np.asarray(clusters, str)
    strata = None if strata[0] is None else np.asarray(strata, str)
    # +1: positive delta = tuned better for a target / tuned worse for a probe (on the raw scale).
    sign = 1.0 if (role == "target") == spec.higher_is_better else -1.0
    xb, xt, w = _values(spec, cols, None)
    sub: dict[str, TaskDelta] = {}
    if strata is not None:
        for name in sorted(set(strata)):
            sel = strata == name
            sub[f"{spec.strata_key or 'stratum'}={name}"] = _delta(
                spec, role, spec.primary_metric, xb[sel], xt[sel], None if w is None else w[sel],
                None if clusters is None else clusters[sel], None, sign)
    for extra in spec.extra_metrics:
        key = _resolve(extra, cols.base_metrics[0])
        if key is None:
            continue  # this backend/task version did not produce it; the table just omits the row
        exb, ext, ew = _values(spec, cols, key)
        sub[extra] = _delta(spec, role, key, exb, ext, ew, clusters, strata, sign)
    td = _delta(spec, role, spec.primary_metric, xb, xt, w, clusters, strata, sign)
    return replace(td, sub=sub) if sub else td  # replace() is slow; most tasks have no sub rows


def with_tests(deltas: Sequence[TaskDelta], level: float = stats.LEVEL) -> list[TaskDelta]:
    """Holm-adjust the probes' McNemar p-values across the pair and set every row's verdict: a probe
    "dropped" / "improved" only where its adjusted p is below 1 - level; the target (one test, no
    adjustment) "gained" / "lost"; else "n.s."."""
    alpha = 1.0 - level
    probes = [i for i, d in enumerate(deltas) if d.role == "probe"]
    adj = dict(zip(probes, stats.holm([deltas[i].p_mcnemar for i in probes])))
    out = []
    for i, d in enumerate(deltas):
        p = adj.get(i, d.p_mcnemar)
        up, down = ("dropped", "improved") if d.role == "probe" else ("lost", "gained")
        verdict = "n.s." if p >= alpha or d.forgotten == d.learned else up if d.forgotten > d.learned else down
        out.append(_tested(d, adj.get(i), verdict))
    return out


def _tested(d: TaskDelta, p_holm: float | None, verdict: str) -> TaskDelta:
    """replace(d, p_holm=..., verdict=...) without dataclasses.replace's generic field walk (a
    leaderboard build makes ~10^5 of these)."""
    return TaskDelta(d.task, d.role, d.metric, d.n, d.base, d.tuned, d.delta, d.forgotten, d.learned, d.sub,
                     d.p_mcnemar, p_holm, verdict)


def mean_drop(deltas: Sequence[TaskDelta]) -> Estimate | None:
    """Mean drop over the probes among `deltas` with its MOVER interval, None if there is no probe."""
    probes = [interval_of(d.delta) for d in deltas if d.role == "probe"]
    return _est(stats.mean_of(probes)) if probes else None


def pair_report(
    base_ref: ModelRef,
    tuned_ref: ModelRef,
    target: str | None,
    runs: dict[str, tuple[TaskSpec, str, TaskRun, TaskRun]],
    settings: dict[str, Any],
) -> PairReport:
    """Every task's paired delta (targets first, then probes, each in the given order), the paired
    tests across the probes, and the mean drop."""
    items = sorted(runs.items(), key=lambda kv: kv[1][1] != "target")
    deltas = with_tests([task_delta(spec, role, b, t) for _, (spec, role, b, t) in items])
    return PairReport(
        base=base_ref,
        tuned=tuned_ref,
        target=target,
        deltas=tuple(deltas),
        mean_drop=mean_drop(deltas),
        settings={**settings, "intervals": stats.settings()},
    )
