"""The one straight-line fit of forgetting against KL, used by `forgetbench law`, the leaderboard's KL
page and the parity toy: ordinary least squares y = slope * x + intercept with R² = 1 - SS_res / SS_tot.

R² is undefined (None) when every y is equal (SS_tot = 0): a flat line then fits perfectly, but it
explains no variation, and printing 1.0 (or 0.0) would claim something about the relation that the
data cannot show. Callers print "n/a".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class LineFit:
    slope: float
    intercept: float
    r2: float | None  # None: every y is equal
    n: int


def r_squared(y: np.ndarray, pred: np.ndarray) -> float | None:
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return None if ss_tot == 0 else 1.0 - float(((y - pred) ** 2).sum()) / ss_tot


def line_fit(x: Sequence[float], y: Sequence[float]) -> LineFit | None:
    """Least squares through (x, y); None for fewer than 2 points or when every x is equal (no slope)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    a = np.column_stack([x, np.ones_like(x)])
    (slope, intercept), *_ = np.linalg.lstsq(a, y, rcond=None)
    return LineFit(float(slope), float(intercept), r_squared(y, slope * x + intercept), len(x))
