"""`forgetbench law`: how well does KL(pi0 || pi) on the target task predict forgetting?

Across every stored pair that has a `pair_kl` row, regress forgetting (the pair's mean drop over
probes, and each probe's own drop) on a KL column (forward KL per sequence by default: the quantity
of RL's Razor). Reported per fit target: n, ordinary least-squares line (slope, intercept, R^2), the
R^2 of a quadratic, and Pearson r with a 95% Fisher-z CI.

Conventions: drops are in points (x100, as in the eval table), KL in nats. Fits are unweighted OLS
on the point estimates; the per-pair CIs are drawn as error bars but do not enter the fits (their
bootstrap widths mix item noise with sampling noise of the KL estimate and are not comparable
variances). A probe's drop is its primary-metric row in `pair_tasks`: the metric the pair's stored
report names for that task (falling back to the registry), never a stratum or extra-metric sub-row.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from forgetbench.errors import UserError
from forgetbench.records import Estimate
from forgetbench.stats.fit import line_fit, r_squared

if TYPE_CHECKING:  # annotations only: the fits, tables and plot need no store
    from forgetbench.store import Store

X_LABELS = {
    "fwd_seq": "forward KL per sequence, KL(π0‖π) (nats)",
    "fwd_tok": "forward KL per token, KL(π0‖π) (nats/token)",
    "rev_tok": "reverse KL per token, KL(π‖π0) (nats/token)",
    "tv_tok": "total variation per token (0–1)",
}
X_UNITS = {"fwd_seq": "nats", "fwd_tok": "nats/token", "rev_tok": "nats/token", "tv_tok": "TV"}
MIN_PAIRS = 3
_Z95 = 1.959963984540054  # standard normal 97.5% quantile
MEAN = "mean_drop"


@dataclass(frozen=True)
class Point:
    """One pair: its KL on the target (x) and its drops in points (mean over probes, and per probe)."""

    pair_id: str
    base: str
    tuned: str
    target: str | None
    method: str | None
    kl_task: str | None
    x: Estimate
    mean_drop: Estimate | None
    probes: dict[str, Estimate] = field(default_factory=dict)


@dataclass(frozen=True)
class Fit:
    target: str  # "mean_drop" or a probe name
    n: int
    slope: float | None = None  # points per x unit
    intercept: float | None = None  # points
    r2_lin: float | None = None
    quad: tuple[float, float, float] | None = None  # (a, b, c) of a*x^2 + b*x + c
    r2_quad: float | None = None
    r: float | None = None
    r_lo: float | None = None
    r_hi: float | None = None
    note: str | None = None  # why some numbers are None


def _est(v, lo, hi, scale: float = 1.0) -> Estimate | None:
    if v is None:
        return None
    f = lambda a: scale * float(a if a is not None else v)  # noqa: E731 - a missing bound collapses to the point
    return Estimate(f(v), f(lo), f(hi))


def _primary_metrics(report_json: str | None, tasks: set[str]) -> dict[str, str]:
    """task -> its primary metric key as put_pair stored it: the report's top-level delta metric."""
    out: dict[str, str] = {}
    try:
        out = {d["task"]: d["metric"] for d in json.loads(report_json or "{}").get("deltas", [])}
    except (ValueError, TypeError, KeyError, AttributeError):
        pass
    missing = tasks - out.keys()
    if missing:
        from forgetbench.tasks import registry

        for t in missing:
            try:
                out[t] = registry.get(t).primary_metric
            except UserError:
                pass  # unknown task and no report: the probe is left out of this pair
    return out


def load_points(store: Store, x: str = "fwd_seq") -> list[Point]:
    """Every pair of `store` with a finite KL column `x`, ordered by x."""
    if x not in X_LABELS:
        raise UserError(f"--x must be one of {', '.join(X_LABELS)}, not {x!r}")
    rows = store.kl_pair_rows(x)
    if not rows:
        return []
    probe_rows: dict[str, list[tuple]] = {}
    for r in store.probe_deltas():
        probe_rows.setdefault(r.pair_id, []).append((r.task, r.metric, r.delta, r.lo, r.hi))
    points = []
    for r in rows:
        mine = probe_rows.get(r.pair_id, [])
        primary = _primary_metrics(r.report, {m[0] for m in mine})
        probes = {t: _est(d, lo, hi, 100.0) for t, m, d, lo, hi in mine if primary.get(t) == m and d is not None}
        points.append(Point(r.pair_id, r.base, r.tuned, r.target, r.method, r.kl_task, _est(r.x, r.x_lo, r.x_hi),
                            _est(r.mean_drop, r.mean_drop_lo, r.mean_drop_hi, 100.0), dict(sorted(probes.items()))))
    return points


def fisher_ci(r: float, n: int) -> tuple[float, float] | None:
    """95% CI of a Pearson r: tanh(atanh(r) -/+ 1.96 / sqrt(n - 3)); None for n < 4."""
    if n < 4:
        return None
    z, se = math.atanh(max(-1 + 1e-15, min(1 - 1e-15, r))), 1.0 / math.sqrt(n - 3)
    return math.tanh(z - _Z95 * se), math.tanh(z + _Z95 * se)


def fit(name: str, x, y) -> Fit:
    """Linear and quadratic least squares, R^2 = 1 - SS_res/SS_tot, Pearson r with a Fisher-z 95% CI."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n < MIN_PAIRS:
        return Fit(name, n, note=f"needs at least {MIN_PAIRS} pairs")
    if np.ptp(x) == 0:
        return Fit(name, n, note="all pairs have the same KL")
    notes = []
    line = line_fit(x, y)
    quad = r2q = None
    if len(np.unique(x)) >= 3:  # a parabola through fewer distinct x is not identified
        q = np.polyfit(x, y, 2)
        quad, r2q = tuple(float(c) for c in q), r_squared(y, np.polyval(q, x))
    else:
        notes.append("quadratic needs 3 distinct KL values")
    r = lo = hi = None
    if np.ptp(y) == 0:
        notes.append("r undefined: every drop is equal")
    else:
        r = float(np.clip(np.corrcoef(x, y)[0, 1], -1.0, 1.0))
        ci = fisher_ci(r, n)
        if ci is None:
            notes.append("r CI undefined for n < 4")
        else:
            lo, hi = ci
    return Fit(name, n, line.slope, line.intercept, line.r2, quad, r2q, r, lo, hi, "; ".join(notes) or None)


def fits(points: list[Point]) -> list[Fit]:
    """The mean-drop fit first, then one per probe (over the pairs that scored that probe)."""
    with_md = [p for p in points if p.mean_drop is not None]
    out = [fit(MEAN, [p.x.value for p in with_md], [p.mean_drop.value for p in with_md])]
    for probe in sorted({t for p in points for t in p.probes}):
        sel = [p for p in points if probe in p.probes]
        out.append(fit(probe, [p.x.value for p in sel], [p.probes[probe].value for p in sel]))
    return out


def notes_for(points: list[Point]) -> list[str]:
    notes = []
    if len({tuple(p.probes) for p in points if p.mean_drop is not None}) > 1:
        notes.append("pairs were scored on different probe sets, so their mean drops average different probes")
    off = [p.pair_id[:12] for p in points if p.kl_task and p.target and p.kl_task != p.target]
    if off:
        notes.append(f"KL was measured on a task other than the pair's target for: {', '.join(off)}")
    return notes


def _num(v: float | None, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def text_table(head: list[str], rows: list[list[str]]) -> list[str]:
    w = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r: list[str]) -> str:  # first column left-aligned, numbers right-aligned
        return "  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)).rstrip()

    return [line(head), "  ".join("-" * x for x in w), *map(line, rows)]


def _r_text(f: Fit, fmt: str) -> str:
    if f.r is None:
        return "n/a"
    return f"{f.r:{fmt}}" + (f" [{f.r_lo:{fmt}}, {f.r_hi:{fmt}}]" if f.r_lo is not None else "")


def short_spec(spec: str, k: int = 28) -> str:
    s = Path(spec).name or spec
    return s if len(s) <= k else "…" + s[-(k - 1):]


def render_points(points: list[Point], x: str) -> str:
    ci = lambda e, f: "n/a" if e is None else f"{e.value:{f}} [{e.lo:{f}}, {e.hi:{f}}]"  # noqa: E731
    rows = [[short_spec(p.tuned), p.target or "-", p.method or "-", ci(p.x, "#.3g"), ci(p.mean_drop, "+.1f")]
            for p in points]
    return "\n".join(text_table(["tuned", "target", "method", f"{x} ({X_UNITS[x]}) [95% CI]",
                             "mean drop (pts) [95% CI]"], rows))


def render_fits(fs: list[Fit], x: str) -> str:
    rows = []
    for f in fs:
        rows.append([f.target, str(f.n), _num(f.slope, "+.3g"), _num(f.intercept, "+.2f"),
                     _num(f.r2_lin, ".3f"), _num(f.r2_quad, ".3f"), _r_text(f, "+.3f")])
    lines = text_table(["fit", "n", f"slope (pts/{X_UNITS[x]})", "intercept (pts)", "R² lin", "R² quad",
                    "Pearson r [95% CI]"], rows)
    lines += [f"  {f.target}: {f.note}" for f in fs if f.note]
    return "\n".join(lines)


def to_json(points: list[Point], fs: list[Fit], x: str, plot: Path | None, notes: list[str]) -> dict:
    return {"x": x, "x_label": X_LABELS[x], "y_unit": "points (x100)", "n_pairs": len(points),
            "points": [asdict(p) for p in points], "fits": [asdict(f) for f in fs],
            "plot": str(plot) if plot else None, "notes": notes}


def _panel(ax, pts: list[tuple[Point, Estimate]], f: Fit, x: str, colors: dict, markers: dict, small: bool):
    """Scatter with CI bars (both axes), the linear and quadratic fits, and a y = 0 reference."""
    for p, y in pts:
        ax.errorbar(p.x.value, y.value, xerr=[[max(0, p.x.value - p.x.lo)], [max(0, p.x.hi - p.x.value)]],
                    yerr=[[max(0, y.value - y.lo)], [max(0, y.hi - y.value)]], fmt=markers[p.method],
                    color=colors[p.target], ms=4 if small else 7, elinewidth=0.8, capsize=0 if small else 2,
                    alpha=0.9, zorder=3)
        if not small and len(pts) <= 15:
            ax.annotate(short_spec(p.tuned, 18), (p.x.value, y.value), xytext=(5, 4), textcoords="offset points",
                        fontsize=7, color="0.35")
    ax.axhline(0, color="0.6", lw=0.8, ls=":", zorder=1)
    xs = np.array([p.x.value for p, _ in pts])
    if f.slope is not None:
        grid = np.linspace(min(0.0, xs.min()), xs.max() * 1.05 if xs.max() > 0 else xs.max(), 200)
        lab = lambda kind, r2: f"{kind} (R² = {_num(r2, '.2f')})"  # noqa: E731
        ax.plot(grid, f.slope * grid + f.intercept, color="k", lw=1.2, label=lab("linear", f.r2_lin), zorder=2)
        if f.quad is not None:
            ax.plot(grid, np.polyval(f.quad, grid), color="tab:red", lw=1.2, ls="--",
                    label=lab("quadratic", f.r2_quad), zorder=2)
    r = "" if f.r is None else f", r = {_r_text(f, '+.2f')}"
    title = f"{'mean drop over probes' if f.target == MEAN else f.target} (n = {f.n}{r})"
    ax.set_title(title, fontsize=9 if small else 11)
    ax.grid(alpha=0.25)
    ax.tick_params(labelsize=7 if small else 9)
    if small:
        ax.set_xlabel(f"{x} ({X_UNITS[x]})", fontsize=8)
        ax.set_ylabel("drop (points)", fontsize=8)
    else:
        ax.set_xlabel(X_LABELS[x])
        ax.set_ylabel("mean drop over probes (points)")


def plot(points: list[Point], fs: list[Fit], x: str, out: Path) -> Path:
    """Big mean-drop panel on top, one small panel per probe below; colour = target, marker = method."""
    try:
        import matplotlib
    except ImportError as e:
        raise UserError("the law plot needs matplotlib: pip install 'forgetbench[plot]'") from e
    matplotlib.use("Agg")  # no display here; must precede pyplot's import
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    probes = [f for f in fs if f.target != MEAN]
    ncol = min(3, max(1, len(probes)))
    nrow = math.ceil(len(probes) / ncol)
    fig = plt.figure(figsize=(4.2 * ncol + 0.8 if probes else 8, 5.2 + 3.0 * nrow), layout="constrained")
    gs = fig.add_gridspec(1 + nrow, ncol, height_ratios=[1.8] + [1] * nrow)
    targets = sorted({p.target for p in points}, key=str)
    methods = sorted({p.method for p in points}, key=str)
    cmap = plt.get_cmap("tab10")
    colors = {t: cmap(i % 10) for i, t in enumerate(targets)}
    markers = {m: "osD^vP*X"[i % 8] for i, m in enumerate(methods)}
    main_ax = fig.add_subplot(gs[0, :])
    _panel(main_ax, [(p, p.mean_drop) for p in points if p.mean_drop is not None], fs[0], x, colors, markers, False)
    groups = [Line2D([], [], color=colors[t], marker="o", ls="", label=f"target: {t or '(none)'}") for t in targets]
    if methods != [None]:
        groups += [Line2D([], [], color="0.3", marker=markers[m], ls="", label=f"method: {m or '(unknown)'}")
                   for m in methods]
    handles, _ = main_ax.get_legend_handles_labels()
    main_ax.legend(handles=handles + groups, fontsize=8, loc="best")
    for i, f in enumerate(probes):
        ax = fig.add_subplot(gs[1 + i // ncol, i % ncol])
        _panel(ax, [(p, p.probes[f.target]) for p in points if f.target in p.probes], f, x, colors, markers, True)
        if f.slope is not None:
            ax.legend(fontsize=6, loc="best")
    fig.suptitle(f"Forgetting vs {X_LABELS[x].rsplit(' (', 1)[0]} on the target task: {len(points)} pairs",
                 fontsize=12)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format=out.suffix.lower().lstrip("."), dpi=130)
    plt.close(fig)
    return out
