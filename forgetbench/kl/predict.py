"""Predicted forgetting for pairs measured with `eval --target-prompts` (RL's Razor's use case).

Such a pair has a KL on the user's own prompts. Its forgetting is PREDICTED from that KL by the linear
fit (mean drop over probes, in points, on the same KL column) over the stored pairs with KL and a
mean drop of OTHER tuned models: neither the pair itself nor another pair of the same tuned model (whose
probes are the same measurements) enters its prediction. With n fitted pairs, line
y = a + b x, residual variance s^2 = SSR / (n - 2), the 95% prediction interval at x0 is

    a + b x0 -/+ t(0.975, n - 2) * s * sqrt(1 + 1/n + (x0 - mean x)^2 / Sxx)

(ordinary least squares; it covers a NEW pair's drop, not just the line, and assumes the pairs'
drops scatter independently and evenly around one line). When the pair's probes were also scored,
the measured mean drop is shown beside the prediction. Simplifications: the pairs' own CIs do not
weight the fit, and pairs with different probe sets are pooled (forgetbench.kl.law notes when).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from forgetbench.kl.law import MIN_PAIRS, X_UNITS, Point, short_spec, text_table
from forgetbench.records import Estimate
from forgetbench.tasks.target_prompts import is_prompt_target

LEVEL = 0.95


@dataclass(frozen=True)
class Prediction:
    pair_id: str
    tuned: str
    target: str  # prompts:<hash>
    x: float  # the pair's KL
    n_fit: int  # pairs the line was fitted on (the others)
    predicted: Estimate | None  # mean drop in points; lo/hi = 95% prediction interval
    measured: Estimate | None  # the pair's own measured mean drop, when it has probes
    method: str = "OLS prediction interval, 95%, t(n-2); fit over the pairs of other tuned models"
    note: str | None = None


def _t(df: int) -> float:
    from scipy.stats import t  # only here: `forgetbench law` is not on the CLI's startup path

    return float(t.ppf(0.5 + LEVEL / 2, df))


def interval(x: np.ndarray, y: np.ndarray, x0: float) -> tuple[Estimate | None, str | None]:
    n = len(x)
    if n < MIN_PAIRS:
        return None, f"needs at least {MIN_PAIRS} other pairs with KL, found {n}"
    if np.ptp(x) == 0:
        return None, "the other pairs all have the same KL"
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    s = math.sqrt(float((resid**2).sum()) / (n - 2)) if n > 2 else float("nan")
    sxx = float(((x - x.mean()) ** 2).sum())
    half = _t(n - 2) * s * math.sqrt(1 + 1 / n + (x0 - float(x.mean())) ** 2 / sxx)
    yhat = float(a + b * x0)
    note = None
    if not (x.min() <= x0 <= x.max()):
        note = f"extrapolated: KL {x0:.3g} is outside the fitted range [{x.min():.3g}, {x.max():.3g}]"
    return Estimate(yhat, yhat - half, yhat + half), note


def predict(points: list[Point]) -> list[Prediction]:
    out = []
    for p in points:
        if not is_prompt_target(p.target):
            continue
        others = [q for q in points if q.tuned != p.tuned and q.mean_drop is not None]
        est, note = interval(np.array([q.x.value for q in others], float),
                             np.array([q.mean_drop.value for q in others], float), p.x.value)
        out.append(Prediction(p.pair_id, p.tuned, p.target, p.x.value, len(others), est, p.mean_drop, note=note))
    return out


def render(preds: list[Prediction], x: str) -> str:
    if not preds:
        return ""
    ci = lambda e: "n/a" if e is None else f"{e.value:+.1f} [{e.lo:+.1f}, {e.hi:+.1f}]"  # noqa: E731
    rows = [[short_spec(p.tuned), p.target, f"{p.x:#.3g}", str(p.n_fit), ci(p.predicted), ci(p.measured)] for p in preds]
    lines = ["PREDICTED forgetting (not measured) for pairs evaluated with --target-prompts: the linear fit",
             f"of mean drop on {x} over the pairs of other tuned models, with a 95% prediction interval", ""]
    lines += text_table(["tuned", "prompts", f"{x} ({X_UNITS[x]})", "fit n", "PREDICTED mean drop (pts) [95% PI]",
                     "measured (pts) [95% CI]"], rows)
    lines += [f"  {p.target}: {p.note}" for p in preds if p.note]
    return "\n".join(lines)
