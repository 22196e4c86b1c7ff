"""benchmarks/reproduce.py's report: the matched-gain pairs compared item by item, the verdict, the line fit
and the table. Pure functions of the runs' results (reproduce.Result), so they are tested without a model.

Simplification: "matched gain" is overlapping 95% gain intervals, not equal gains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from forgetbench import stats
from forgetbench.records import Estimate, TaskRun, TaskSpec
from forgetbench.stats.fit import line_fit
from forgetbench.stats.paired import interval_of, task_delta

if TYPE_CHECKING:
    from reproduce import Result

ONPOLICY = ("onpolicy-sft", "rl", "self-sft")  # compared against "sft" at matched gain


@dataclass(frozen=True)
class Matched:
    sft: Result
    onpolicy: Result
    less: Estimate  # SFT's drop - the on-policy run's drop, paired on the probe items


def fmt(e: Estimate | None, scale: float = 100.0, f: str = "+.1f") -> str:
    return "-" if e is None else f"{scale * e.value:{f}} [{scale * e.lo:{f}}, {scale * e.hi:{f}}]"


def overlap(a: Estimate, b: Estimate) -> bool:
    return a.lo <= b.hi and b.lo <= a.hi


def forgets_less(specs: dict[str, TaskSpec], sft: dict[str, TaskRun], onpolicy: dict[str, TaskRun]) -> Estimate:
    """How much less the on-policy model forgets than the SFT model: per probe, the paired interval of
    (on-policy score - SFT score) on the items both were scored on (= SFT's drop - the on-policy drop,
    sign-flipped where lower is better), combined over probes by the MOVER mean as a pair's mean drop is.
    task_delta with role "target" computes exactly that paired delta (base = SFT, tuned = on-policy),
    with the task's own clusters, strata and weights."""
    if set(sft) != set(onpolicy) or not sft:
        raise ValueError(f"probe sets differ: {sorted(sft)} vs {sorted(onpolicy)}")
    deltas = [task_delta(specs[t], "target", sft[t], onpolicy[t]).delta for t in sorted(sft)]
    iv = stats.mean_of([interval_of(d) for d in deltas])
    return Estimate(float(iv.value), float(iv.lo), float(iv.hi), iv.method)


def matched_pairs(results: list[Result], specs: dict[str, TaskSpec]) -> list[Matched]:
    """Every (SFT run, on-policy run) whose gain intervals overlap, with the direct forgetting difference."""
    return [Matched(s, o, forgets_less(specs, s.probe_runs, o.probe_runs))
            for s in results if s.method == "sft"
            for o in results if o.method in ONPOLICY and overlap(s.gain, o.gain)]


def matched_line(m: Matched) -> str:
    side = "excludes 0" if m.less.lo > 0 or m.less.hi < 0 else "includes 0"
    return (f"{m.sft.name} (gain {fmt(m.sft.gain)}) vs {m.onpolicy.name} (gain {fmt(m.onpolicy.gain)}): mean drop "
            f"{fmt(m.sft.drop)} vs {fmt(m.onpolicy.drop)}; on-policy forgets {fmt(m.less)} points less (interval {side})")


def verdict(matched: list[Matched]) -> str:
    if not matched:
        return "verdict: no SFT and on-policy runs with overlapping gain intervals: no matched-gain comparison"
    less = sum(m.less.lo > 0 for m in matched)
    more = sum(m.less.hi < 0 for m in matched)
    return (f"verdict: {len(matched)} matched pairs; the on-policy run forgets less (interval excluding 0) in {less}, "
            f"more in {more}, inconclusive in {len(matched) - less - more} (pairs share runs: not independent tests)")


def fit_line(results: list[Result]) -> str:
    pts = [(r.kl.value, 100 * r.drop.value) for r in results if r.kl is not None and r.drop is not None]
    f = line_fit([x for x, _ in pts], [y for _, y in pts])
    if f is None:
        return f"line fit of mean drop on forward KL: not enough runs with distinct KL ({len(pts)})"
    r2 = "n/a" if f.r2 is None else f"{f.r2:.3f}"
    return (f"line fit over these {f.n} runs: mean drop (points) = {f.slope:+.3g} x KL (nats/seq) "
            f"{f.intercept:+.2f}; R² {r2}")


def table(results: list[Result]) -> str:
    head = f"{'run':<17}{'method':<14}{'budget':<18}{'gain (pts)':<22}{'mean drop (pts)':<22}{'KL nats/seq':<22}"
    lines = [head + "train s  eval s", "-" * (len(head) + 15)]
    for r in results:
        lines.append(f"{r.name:<17}{r.method:<14}{r.budget:<18}{fmt(r.gain):<22}{fmt(r.drop):<22}"
                     f"{fmt(r.kl, 1.0, '.3g'):<22}{r.train_s:<9.0f}{r.eval_s:.0f}")
    return "\n".join(lines)
