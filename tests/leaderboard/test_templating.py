"""forgetbench.leaderboard.templating: the texts of an estimate are the same whether formatted anew or
taken from the memo of texts already made (a build formats the same values thousands of times)."""

import itertools

from forgetbench.leaderboard import templating
from forgetbench.leaderboard.templating import ci, pts, texts


def test_memoized_texts_equal_fresh_ones(monkeypatch):
    values = [None, 0.0, -0.0, 1, 1.0, True, 0.05, -0.05, 0.1234, float("nan"), 0.00049, -0.00049, 0.15, 0.25,
              -0.35, 2.675e-3, 1e-300]
    monkeypatch.setattr(templating, "_TEXTS", {})
    monkeypatch.setattr(templating, "_TEXTS_MAX", 50)  # the memo is cleared when full, and refilled
    for _ in range(2):  # the second round mostly from the memo
        for signed, v, lo, hi in itertools.product((True, False), values, values[:8], values[6:12]):
            row = {"d": v, "d_lo": lo, "d_hi": hi}
            texts(row, "d", signed)
            assert (row["d_text"], row["d_ci"]) == (pts(v, signed), ci(lo, hi, signed)), (signed, v, lo, hi)
    assert 0 < len(templating._TEXTS) <= 50
    assert pts(-0.0, True) == pts(0.0, True) == "+0.0" and pts(True) == pts(1.0) == "100.0"  # why equal keys may share
