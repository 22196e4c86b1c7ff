"""Analysis and geometry behind the leaderboard's plots: Pareto frontiers, drop at matched gain, the
KL-vs-forgetting fit, and scatter layouts (pixel coordinates) that templates/_scatter.html draws as
inline SVG. Nothing here produces markup: every label goes through the autoescaping template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence



def pareto_frontier(gains: Sequence[float], drops: Sequence[float]) -> list[int]:
    """Indices of the points no other point dominates (gain >= and drop <=, one strictly), by gain.

    Higher gain and lower drop are better. Exact duplicates keep their first occurrence only.
    """
    order = sorted(range(len(gains)), key=lambda i: (-gains[i], drops[i], i))
    front, best = [], math.inf
    for i in order:
        if drops[i] < best:  # everything before has gain >= this one, so it must drop strictly less
            front.append(i)
            best = drops[i]
    return front[::-1]


def drop_at_gain(front: Sequence[tuple[float, float]], g: float) -> float | None:
    """Drop of a method at gain g, from its frontier [(gain, drop)] sorted by gain.

    Below the frontier's smallest gain, the first frontier point already reaches g, so its drop
    counts; between two frontier points, linear interpolation; above the largest gain, None (the
    method never reached g).
    """
    if not front or g > front[-1][0]:
        return None
    if g <= front[0][0]:
        return front[0][1]
    for (g0, d0), (g1, d1) in zip(front, front[1:]):
        if g0 <= g <= g1:
            return d0 if g1 == g0 else d0 + (d1 - d0) * (g - g0) / (g1 - g0)
    return None


def matched_gain_level(fronts: dict[str, list[tuple[float, float]]]) -> float | None:
    """The highest gain every method's frontier reaches: min over methods of their best gain."""
    tops = [f[-1][0] for f in fronts.values() if f]
    return min(tops) if tops else None


# ---- layout ------------------------------------------------------------------------------------------

def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        lo, hi = (lo - 1, lo + 1) if math.isfinite(lo) else (0.0, 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 10))
    return ticks


@dataclass
class Point:
    x: float
    y: float
    cls: str  # CSS class (c0..c9): the method's colour
    title: str  # hover text (escaped by the template)
    href: str | None = None  # only ever entries/<valid id>.html
    series: str = ""


@dataclass
class Layout:
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    xlabel: str
    ylabel: str
    xticks: list[tuple[float, str]] = field(default_factory=list)
    yticks: list[tuple[float, str]] = field(default_factory=list)
    points: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)  # {"points": "x,y x,y", "cls", "series", "title"}
    zero_y: float | None = None


def scatter(points: list[Point], *, xlabel: str, ylabel: str, lines: Sequence[tuple[list[tuple[float, float]], str, str, str]] = (),
            xfmt="{:.1f}", yfmt="{:.1f}", width: int = 620, height: int = 400) -> Layout:
    """Pixel layout of a scatter; `lines` = [(data points, css class, series, title)]."""
    lay = Layout(width, height, 64, 16, width - 16, height - 48, xlabel, ylabel)
    xs = [p.x for p in points] + [x for pts, *_ in lines for x, _ in pts]
    ys = [p.y for p in points] + [y for pts, *_ in lines for _, y in pts]
    if not xs:
        return lay
    pad = lambda v: (min(v) - 0.05 * (max(v) - min(v) or 1), max(v) + 0.05 * (max(v) - min(v) or 1))  # noqa: E731
    xt, yt = nice_ticks(*pad(xs)), nice_ticks(*pad(ys))
    sx = lambda v: lay.left + (v - xt[0]) / (xt[-1] - xt[0]) * (lay.right - lay.left)  # noqa: E731
    sy = lambda v: lay.bottom - (v - yt[0]) / (yt[-1] - yt[0]) * (lay.bottom - lay.top)  # noqa: E731
    lay.xticks = [(round(sx(t), 1), xfmt.format(t)) for t in xt]
    lay.yticks = [(round(sy(t), 1), yfmt.format(t)) for t in yt]
    if yt[0] < 0 < yt[-1]:
        lay.zero_y = round(sy(0.0), 1)
    lay.points = [{"cx": round(sx(p.x), 1), "cy": round(sy(p.y), 1), "cls": p.cls, "title": p.title,
                   "href": p.href, "series": p.series} for p in points]
    lay.lines = [{"points": " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts), "cls": cls, "series": series,
                  "title": title} for pts, cls, series, title in lines if pts]
    return lay
