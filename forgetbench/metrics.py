"""Paired statistics of base vs tuned on each task: gain/drop with bootstrap CIs, forgotten/learned.

Conventions (the report's numbers mean exactly this):
- Items are paired by `doc_hash`; base and tuned must have scored the same multiset of rows.
- Aggregate of a task = micro mean of the per-item scores (weighted when the item carries a weight,
  see below); when items carry a `stratum`, the aggregate is the unweighted mean of per-stratum
  aggregates (safety: mean of the harmful-refusal rate and the safe-compliance rate), so the
  relative size of the strata does not decide the headline number.
- delta is signed so that positive = what the role cares about: gain (tuned - base) on a target,
  drop (base - tuned) on a probe. With `higher_is_better: false` both signs flip (a target gains
  when the metric goes down; a probe drops when it goes up). base/tuned are always raw values.
- CI: 95% percentile interval of a paired bootstrap. One resample draws units with replacement and
  evaluates base, tuned and their difference on the same draw, so the CI of the delta reflects the
  pairing. Units are items, or whole clusters when items carry `cluster` (a resampled set of clusters
  is scored as the micro mean over its items). With strata, each stratum is resampled on its own,
  keeping its number of units, and the replicate is the mean of the stratum replicates.
- forgotten = items right for base and wrong for tuned, learned = the reverse; "right" means
  score >= 0.5 (scores are 0/1 for the built-in tasks), or score < 0.5 when lower is better.
- Weights: an extra metric `K` whose items also carry `K + "__n"` (e.g. ifeval's inst_level_* stored
  as the per-prompt mean of the instruction list, plus the instruction count) is aggregated as
  sum(n_i * x_i) / sum(n_i), i.e. lm-eval's micro mean over instructions, and resampled by prompt.
  The same applies to the primary metric if its key has a "__n" companion.
- Each task draws from its own random stream, seeded from (seed, task name): replicate vectors of
  different probes are independent, so `mean_drop` can average them replicate-wise.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from .bootstrap import (  # noqa: F401 - paired_bootstrap, percentile_ci are part of this module's API
    Boot,
    CI_LEVEL,
    _support_ci,
    paired_bootstrap,
    percentile_ci,
)
from .errors import UserError
from .records import Estimate, ItemResult, ModelRef, PairReport, TaskDelta, TaskRun, TaskSpec


def _est(value: float, reps: np.ndarray, support: tuple | None = None) -> Estimate:
    ci = None if support is None else _support_ci(*support)
    lo, hi = percentile_ci(reps) if ci is None else ci
    return Estimate(float(value), lo, hi)


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


def _resolve(key: str, item: ItemResult) -> str | None:
    """lm-eval per-sample key for `key`: exact, "key,none", or the only "key,<filter>"."""
    for k in (key, f"{key},none"):
        if k in item.metrics:
            return k
    hits = [k for k in item.metrics if k.split(",")[0] == key and not k.endswith("__n")]
    return hits[0] if len(hits) == 1 else None


def _values(spec: TaskSpec, pairs, key: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Base/tuned per-item values (the primary score when key is None) and optional weights."""
    def get(item: ItemResult, k: str) -> float:
        if k not in item.metrics:
            raise UserError(f"task {spec.name}: item {item.doc_hash[:12]} lacks metric {k!r}")
        return float(item.metrics[k])

    if key is None:
        xb = np.array([b.score for b, _ in pairs], float)
        xt = np.array([t.score for _, t in pairs], float)
    else:
        xb = np.array([get(b, key) for b, _ in pairs])
        xt = np.array([get(t, key) for _, t in pairs])
    if not (np.isfinite(xb).all() and np.isfinite(xt).all()):
        raise UserError(f"task {spec.name}: non-finite scores for {key or 'the primary metric'}")
    wkey = None if key is None else f"{key}__n"
    if key is None:
        k = _resolve(spec.primary_metric, pairs[0][0])
        wkey = f"{k}__n" if k else None
    w = None
    if wkey and wkey in pairs[0][0].metrics:
        w = np.array([get(b, wkey) for b, _ in pairs])
        if (w < 0).any() or w.sum() <= 0:
            raise UserError(f"task {spec.name}: bad instruction counts in {wkey!r}")
    return xb, xt, w


def _delta(spec, role, metric, n, boot: Boot, xb, xt, sign) -> TaskDelta:
    right = (lambda x: x >= 0.5) if spec.higher_is_better else (lambda x: x < 0.5)
    rb, rt = right(xb), right(xt)
    sup = boot.support
    return TaskDelta(
        task=spec.name,
        role=role,
        metric=metric,
        n=n,
        base=_est(boot.base, boot.base_reps, sup and (sup[0], sup[1])),
        tuned=_est(boot.tuned, boot.tuned_reps, sup and (sup[0], sup[2])),
        delta=_est(sign * boot.diff, sign * boot.diff_reps, sup and (sup[0], sign * sup[3])),
        forgotten=int((rb & ~rt).sum()),
        learned=int((~rb & rt).sum()),
    )


def _stream(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def task_delta_with_reps(
    spec: TaskSpec, role: str, base: TaskRun, tuned: TaskRun, *, n_boot: int = 10000, seed: int = 0
) -> tuple[TaskDelta, np.ndarray]:
    """The TaskDelta and the bootstrap replicates of its (signed) delta, for `mean_drop`."""
    if role not in ("target", "probe"):
        raise ValueError(f"role must be target or probe, not {role!r}")
    if base.task != tuned.task:
        raise UserError(f"mismatched inputs: pairing runs of {base.task!r} and {tuned.task!r}")
    pairs = _pair_items(spec, base, tuned)
    clusters = [b.cluster for b, _ in pairs]
    strata = [b.stratum for b, _ in pairs]
    for label, vals in (("cluster", clusters), ("stratum", strata)):
        if len({v is None for v in vals}) > 1:
            raise UserError(f"task {spec.name}: some items have a {label} and some do not")
    clusters = None if clusters[0] is None else clusters
    strata = None if strata[0] is None else strata
    # +1: positive delta = tuned better for a target / tuned worse for a probe (on the raw scale).
    sign = 1.0 if (role == "target") == spec.higher_is_better else -1.0

    def run(key: str | None, rng) -> tuple[Boot, np.ndarray, np.ndarray]:
        xb, xt, w = _values(spec, pairs, key)
        boot = paired_bootstrap(xb, xt, weights=w, clusters=clusters, strata=strata, n_boot=n_boot, rng=rng)
        return boot, xb, xt

    boot, xb, xt = run(None, _stream(seed, spec.name))
    sub: dict[str, TaskDelta] = {}
    if strata is not None:
        sarr = np.asarray(strata, str)
        for name, sb in boot.by_stratum.items():
            sel = sarr == name
            label = f"{spec.strata_key or 'stratum'}={name}"
            sub[label] = _delta(spec, role, spec.primary_metric, int(sel.sum()), sb, xb[sel], xt[sel], sign)
    for extra in spec.extra_metrics:
        key = _resolve(extra, pairs[0][0])
        if key is None:
            continue  # this backend/task version did not produce it; the table just omits the row
        eb, exb, ext = run(key, _stream(seed, spec.name, key))
        sub[extra] = _delta(spec, role, key, len(pairs), eb, exb, ext, sign)
    td = _delta(spec, role, spec.primary_metric, len(pairs), boot, xb, xt, sign)
    return replace(td, sub=sub), sign * boot.diff_reps


def task_delta(
    spec: TaskSpec, role: str, base: TaskRun, tuned: TaskRun, *, n_boot: int = 10000, seed: int = 0
) -> TaskDelta:
    return task_delta_with_reps(spec, role, base, tuned, n_boot=n_boot, seed=seed)[0]


def mean_drop(deltas: Sequence[TaskDelta], replicates: Sequence[np.ndarray]) -> Estimate | None:
    """Mean drop over the probes among `deltas` (replicates aligned with deltas), None if no probe.

    Probes are disjoint item sets resampled from independent streams, so the replicate-wise mean
    of their drop replicates is a bootstrap replicate of the mean drop.
    """
    if len(deltas) != len(replicates):
        raise ValueError("one replicate vector per delta")
    probes = [(d, r) for d, r in zip(deltas, replicates) if d.role == "probe"]
    if not probes:
        return None
    reps = np.mean(np.stack([np.asarray(r, float) for _, r in probes]), axis=0)
    return _est(float(np.mean([d.delta.value for d, _ in probes])), reps)


def pair_report(
    base_ref: ModelRef,
    tuned_ref: ModelRef,
    target: str | None,
    runs: dict[str, tuple[TaskSpec, str, TaskRun, TaskRun]],
    settings: dict[str, Any],
    *,
    n_boot: int = 10000,
    seed: int = 0,
) -> PairReport:
    """Every task's paired delta (targets first, then probes, each in the given order) + mean drop."""
    items = sorted(runs.items(), key=lambda kv: kv[1][1] != "target")
    deltas, reps = [], []
    for _, (spec, role, b, t) in items:
        d, r = task_delta_with_reps(spec, role, b, t, n_boot=n_boot, seed=seed)
        deltas.append(d)
        reps.append(r)
    boot_cfg = {"n_boot": n_boot, "seed": seed, "ci": CI_LEVEL, "method": "paired percentile bootstrap"}
    return PairReport(
        base=base_ref,
        tuned=tuned_ref,
        target=target,
        deltas=tuple(deltas),
        mean_drop=mean_drop(deltas, reps),
        settings={**settings, "bootstrap": boot_cfg},
    )
