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


def _stored(batches):
    """Rows of entry_tasks after inserting each batch (a list of rows) through tables.Writer."""
    import duckdb

    con = duckdb.connect()
    tables.create(con)
    w = tables.Writer(lambda: con)
    for rows in batches:
        w.add("entry_tasks", rows)
        w.flush()
    return con.execute("SELECT * FROM entry_tasks ORDER BY ALL").fetchall()


def test_arrow_batches_store_what_a_dataframe_stores(monkeypatch):
    """Writer's Arrow batches and its DataFrame way (taken for a value Arrow refuses) store the same
    values: NULLs, NaN (as NULL), ints in DOUBLE columns, non-ASCII text; an integer too large for its
    INTEGER column is refused by DuckDB either way, naming the conversion."""
    import duckdb
    import pyarrow as pa

    names = tables.NAMES["entry_tasks"]

    def row(i, **kw):
        r = {n: None for n in names} | {"entry_id": f"e{i}", "task": "t✓ <b>", "n": 20, "base": 1,
                                        "delta": float("nan"), "forgotten": 3, "p_mcnemar": 0.25, "verdict": "dropped"}
        return tuple((r | kw)[n] for n in names)

    rows = [row(i) for i in range(5)] + [row(9, base=0.5, sub="x" * 5000)]
    arrow = _stored([rows])
    calls = []
    real = tables._arrow

    def refuse(*a, **k):  # the DataFrame way for every batch
        calls.append(1)
        raise pa.ArrowInvalid("refused")

    monkeypatch.setattr(tables, "_arrow", refuse)
    assert _stored([rows]) == arrow and calls
    assert [r[names.index("delta")] for r in arrow] == [None] * 6  # NaN stored as NULL, as before
    assert [r[names.index("base")] for r in arrow] == [1.0] * 5 + [0.5]
    monkeypatch.setattr(tables, "_arrow", real)
    with pytest.raises(duckdb.ConversionException):
        _stored([[row(1, n=2**40)]])  # Arrow refuses it for int32; DuckDB then names the conversion
