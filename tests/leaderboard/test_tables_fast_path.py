"""entry_rows' forgotten items: the one-pass selection (tables._forgotten_first) keeps exactly the rows the
item-by-item loop keeps, and a malformed score still becomes the loop's error."""

import pytest

from forgetbench.leaderboard import tables
from forgetbench.leaderboard.submission import FORGOTTEN_CAP


def _results(scores):
    items = [{"doc_id": j, "prompt": f"q{j}", "base": {"score": b, "response": "b"}, "tuned": {"score": t, "response": "t"}}
             for j, (b, t) in enumerate(scores)]
    agg = {k: {"value": 0.5, "lo": 0.4, "hi": 0.6} for k in ("base", "tuned", "delta")}
    return {"tasks": [{"task": "lite_arith", "role": "probe", "aggregate": {**agg, "n": len(items)}, "items": items}],
            "mean_drop": None, "kl": None}


def _forgotten(scores, hib):
    kind, rows = tables.table_rows("e1", {"target": "x"}, _results(scores), "0" * 64, {"lite_arith": hib})
    return kind, (rows if kind == "error" else rows[3])


@pytest.mark.parametrize("hib", [True, False])
@pytest.mark.parametrize("scores", [
    [(1.0, 0.0), (0.0, 1.0), (1, 1), (0.5, 0.49), (0.0, 0.0)],
    [(1.0, 0.0)] * (FORGOTTEN_CAP + 7) + [(0.0, 1.0)] * 3,
    [(1.0, 0.0), (True, 0.0)],  # a bool is no score: the loop's error
    [(1.0, 0.0), ("1", 0.0)],
    [(1.0, 0.0), (float("nan"), 0.0)],
])
def test_fast_selection_matches_the_loop(scores, hib, monkeypatch):
    fast = _forgotten(scores, hib)
    monkeypatch.setattr(tables, "_forgotten_first", lambda items, higher_is_better: items)
    assert fast == _forgotten(scores, hib)
