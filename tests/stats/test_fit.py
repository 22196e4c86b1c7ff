"""forgetbench.stats.fit: the one drop-vs-KL line of `forgetbench law`, the leaderboard's KL page and
the parity toy."""

import numpy as np
import pytest

from forgetbench.kl.law import fit as law_fit
from forgetbench.leaderboard import site
from forgetbench.stats.fit import line_fit


def test_exact_line_and_r2():
    f = line_fit([0.0, 1, 2], [1.0, 3, 5])
    assert (f.slope, f.intercept, f.r2, f.n) == pytest.approx((2, 1, 1, 3))
    g = line_fit([0, 1, 2, 3], [1, 3, 5, 7.5])
    assert g.slope == pytest.approx(2.15) and 0.99 < g.r2 < 1.0


def test_every_drop_equal_gives_an_undefined_r2_everywhere():
    # the law and the site used to disagree here (undefined vs 1.0) and the toy said 0
    f = line_fit([0.1, 0.5, 0.9, 2.0], [3.0, 3.0, 3.0, 3.0])
    assert f.r2 is None and f.slope == pytest.approx(0) and f.intercept == pytest.approx(3)
    law = law_fit("all", [0.1, 0.5, 0.9, 2.0], [3.0, 3.0, 3.0, 3.0])
    assert law.r2_lin is None and (law.slope, law.intercept) == pytest.approx((f.slope, f.intercept))
    assert site._r2_text(f.r2).startswith("n/a")


def test_no_line_without_two_distinct_x():
    assert line_fit([1.0], [2.0]) is None
    assert line_fit([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None


def test_law_and_site_agree_on_the_same_points():
    x, y = np.array([0.2, 0.4, 1.1, 2.5, 3.0]), np.array([1.0, 2.5, 2.0, 6.0, 7.5])
    law, line = law_fit("all", x, y), line_fit(x, y)
    assert (law.slope, law.intercept, law.r2_lin) == (line.slope, line.intercept, line.r2)
