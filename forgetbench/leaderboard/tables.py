"""An entry's rows in the leaderboard tables (the format of OUT/leaderboard.duckdb): parsed defensively from
the submission files, so a malformed value becomes a clear problem and never a crash of the build."""

from __future__ import annotations

import json
import math
from typing import Any

from forgetbench.errors import UserError
from forgetbench.leaderboard.itemcheck import numbers_ok
from forgetbench.leaderboard.submission import FORGOTTEN_CAP


def num(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"not a finite number: {str(x)[:40]!r}")
    return float(x)


def est(d: Any, what: str) -> tuple[float, float, float] | None:
    if d is None:
        return None
    if not isinstance(d, dict):
        raise ValueError(f"{what}: expected {{value, lo, hi}}")
    return num(d.get("value")), num(d.get("lo")), num(d.get("hi"))


def method_of(d: Any) -> str:
    """An estimate's interval method (forgetbench.stats); "" for a record without one."""
    return text(d.get("method"), 100) if isinstance(d, dict) else ""


def opt_num(x: Any) -> float | None:
    return None if x is None else num(x)


def printable(s: str) -> str:
    """A folder name or message as text that can be written: undecodable file-name bytes (which Python
    keeps as lone surrogates) become backslash escapes."""
    try:  # a file name's undecodable bytes, shown as the bytes they were (\xff)
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # any other lone surrogate
        return s.encode("utf-8", "backslashreplace").decode("utf-8")


def text(x: Any, limit: int = 4000) -> str:
    return "" if x is None else str(x)[:limit]


def higher_is_better() -> dict[str, bool]:
    from forgetbench.tasks import registry

    try:
        return {n: t.higher_is_better for n, t in registry.all_tasks().items()}
    except UserError:
        return {}


def builtin_tasks() -> set[str] | None:
    """Names of the built-in registry's tasks (not --tasks-dir ones); None when the registry is broken."""
    from forgetbench.tasks import registry

    try:
        return {n for n, t in registry.all_tasks().items() if not t.custom}
    except UserError:
        return None


def table_rows(entry_id: str, m: dict, r: dict, sha256: str, hib: dict[str, bool],
               builtin: set[str] | None = None) -> tuple[str, Any]:
    """("ok", (entries row, entry_tasks rows, entry_kl rows, entry_forgotten rows)) of one parsed entry,
    or ("error", why) when a value has the wrong type. The rows are tuples in COLUMNS order (a third
    of the memory of dicts), except the entries row: a dict without the validator's verdict
    (status, badges, warnings, reference), which _with_verdict adds."""
    try:
        rows = entry_rows(entry_id, m, r, sha256, hib, builtin)
    except (ValueError, TypeError, AttributeError) as err:
        return "error", str(err)
    entry, *rest = rows
    return "ok", (entry, *([tuple(row[c] for c in NAMES[t]) for row in rs] for t, rs in zip(ENTRY_PARTS, rest)))


def _forgotten_first(items, higher_is_better: bool):
    """The items entry_rows' forgotten loop should look at: the forgotten ones (right for base, wrong for
    tuned), up to the cap, found in one pass when every score is a finite number (a schema-valid entry),
    else all items (the loop then checks each value and reports the first bad one)."""
    try:
        sb, st = [it["base"]["score"] for it in items], [it["tuned"]["score"] for it in items]
    except (KeyError, TypeError):
        return items
    if not (numbers_ok(sb) and numbers_ok(st)):
        return items
    if higher_is_better:
        pos = [j for j, (b, t) in enumerate(zip(sb, st)) if b >= 0.5 and t < 0.5]
    else:
        pos = [j for j, (b, t) in enumerate(zip(sb, st)) if b < 0.5 and t >= 0.5]
    return [items[j] for j in pos[:FORGOTTEN_CAP]]


def entry_rows(entry_id: str, m: dict, r: dict, sha256: str, hib: dict[str, bool],
          builtin: set[str] | None = None) -> tuple[dict, list[dict], list[dict], list[dict]]:
    """table_rows as dicts (raises ValueError / TypeError / AttributeError on a wrongly typed value)."""
    base, tuned = m.get("base") or {}, m.get("tuned") or {}
    if not isinstance(base, dict) or not isinstance(tuned, dict):
        raise ValueError("metadata base/tuned must be mappings")
    hp = m.get("hyperparameters") or {}
    if not isinstance(hp, dict):
        raise ValueError("metadata hyperparameters must be a mapping")
    target = text(m.get("target"), 200)
    tasks, forgotten = [], []
    gain, gain_method = None, ""
    for t in r["tasks"]:
        name, agg = text(t.get("task"), 200), t.get("aggregate") or {}
        role = "target" if t.get("role") == "target" else "probe"
        subs = agg.get("sub") or {}
        if not isinstance(subs, dict):
            raise ValueError(f"task {name}: aggregate.sub must be a mapping")
        for sub, a in [("", agg), *subs.items()]:
            b, tu, d = (est(a.get(k), f"{name} {k}") for k in ("base", "tuned", "delta"))
            if b is None or tu is None or d is None:
                raise ValueError(f"task {name}: aggregate lacks base/tuned/delta")
            tasks.append({
                "entry_id": entry_id, "task": name, "sub": text(sub, 200), "role": role,
                "version": text(t.get("version"), 50), "data_hash": text(t.get("data_hash"), 64),
                "metric": text(a.get("metric") or t.get("primary_metric"), 200), "n": int(num(a.get("n"))),
                "base": b[0], "base_lo": b[1], "base_hi": b[2], "tuned": tu[0], "tuned_lo": tu[1], "tuned_hi": tu[2],
                "delta": d[0], "delta_lo": d[1], "delta_hi": d[2],
                "forgotten": int(num(a.get("forgotten", 0))), "learned": int(num(a.get("learned", 0))),
                **{f"{k}_method": method_of(a.get(k)) for k in ("base", "tuned", "delta")},
                "p_mcnemar": opt_num(a.get("p_mcnemar")), "p_holm": opt_num(a.get("p_holm")),
                "verdict": text(a.get("verdict"), 20) or None,
            })
            if not sub and role == "target" and name == target:
                gain, gain_method = d, method_of(a.get("delta"))
        right = (lambda s: s >= 0.5) if hib.get(name, True) else (lambda s: s < 0.5)
        kept = 0
        for it in _forgotten_first(t.get("items") or (), hib.get(name, True)):
            if kept >= FORGOTTEN_CAP:
                break
            ib, itu = it.get("base") or {}, it.get("tuned") or {}
            sb, st = num(ib.get("score")), num(itu.get("score"))
            if right(sb) and not right(st):
                kept += 1
                forgotten.append({
                    "entry_id": entry_id, "task": name, "pos": kept, "doc_id": int(num(it.get("doc_id"))),
                    "prompt": text(it.get("prompt")), "base_response": text(ib.get("response")),
                    "tuned_response": text(itu.get("response")), "base_score": sb, "tuned_score": st,
                })
    md = est(r.get("mean_drop"), "mean_drop")
    kl_rows = []
    kl = r.get("kl")
    if isinstance(kl, dict):
        row = {"entry_id": entry_id, "task": text(kl.get("task"), 200), "n_seq": int(num(kl.get("n_seq"))),
               "n_tokens": int(num(kl.get("n_tokens"))), "settings": json.dumps(kl.get("settings") or {})}
        for k in ("fwd_seq", "fwd_tok", "rev_tok", "tv_tok"):
            v = est(kl.get(k), f"kl {k}") or (None, None, None)
            row.update({k: v[0], f"{k}_lo": v[1], f"{k}_hi": v[2]})
        kl_rows.append(row)
    intervals = r.get("intervals") or {}
    entry = {
        "entry_id": entry_id, "title": text(m.get("title"), 300), "method": text(m.get("method"), 50),
        "target": target, "base_hub_id": text(base.get("hub_id"), 300), "base_revision": text(base.get("revision"), 100),
        "base_hash": text(base.get("content_hash"), 64),
        "base_spec": text((r.get("pair") or {}).get("base_spec"), 300), "tuned_hub_id": text(tuned.get("hub_id"), 300),
        "tuned_revision": text(tuned.get("revision"), 100), "tuned_hash": text(tuned.get("content_hash"), 64),
        "training_data": text(m.get("training_data")), "hyperparameters": json.dumps(
            {text(k, 200): v if isinstance(v, (int, float, bool)) or v is None else text(v, 500) for k, v in hp.items()}),
        "compute": text(m.get("compute"), 500), "contact": text(m.get("contact"), 300),
        "licence": text(m.get("licence"), 100), "notes": text(m.get("notes")),
        "exported_at": text(r.get("exported_at"), 60), "versions": json.dumps(r.get("versions") or {}),
        "settings": json.dumps((r.get("pair") or {}).get("settings") or {}), "seed": text(r.get("seed"), 40),
        "intervals": text(intervals.get("scheme"), 100) if isinstance(intervals, dict) else "",
        "results_sha256": sha256, "gain_method": gain_method, "mean_drop_method": method_of(r.get("mean_drop")),
        "gain": gain[0] if gain else None, "gain_lo": gain[1] if gain else None, "gain_hi": gain[2] if gain else None,
        "mean_drop": md[0] if md else None, "mean_drop_lo": md[1] if md else None, "mean_drop_hi": md[2] if md else None,
        # any task (or a --target-prompts target) outside the built-in registry: ranked only among custom entries
        "custom": builtin is not None and any(n not in builtin for n in [target, *(t["task"] for t in tasks)]),
    }
    return entry, tasks, kl_rows, forgotten


COLUMNS = {
    "entries": "entry_id VARCHAR PRIMARY KEY, title VARCHAR, method VARCHAR, target VARCHAR, status VARCHAR, "
               "badges JSON, warnings JSON, base_hub_id VARCHAR, base_revision VARCHAR, base_hash VARCHAR, base_spec VARCHAR, tuned_hub_id VARCHAR, "
               "tuned_revision VARCHAR, tuned_hash VARCHAR, training_data VARCHAR, hyperparameters JSON, "
               "compute VARCHAR, contact VARCHAR, licence VARCHAR, notes VARCHAR, reference BOOLEAN, "
               "exported_at VARCHAR, versions JSON, settings JSON, seed VARCHAR, intervals VARCHAR, "
               "results_sha256 VARCHAR, gain DOUBLE, gain_lo DOUBLE, gain_hi DOUBLE, mean_drop DOUBLE, "
               "mean_drop_lo DOUBLE, mean_drop_hi DOUBLE, custom BOOLEAN, gain_method VARCHAR, "
               "mean_drop_method VARCHAR",
    "entry_tasks": "entry_id VARCHAR, task VARCHAR, sub VARCHAR, role VARCHAR, version VARCHAR, data_hash VARCHAR, "
                   "metric VARCHAR, n INTEGER, base DOUBLE, base_lo DOUBLE, base_hi DOUBLE, tuned DOUBLE, "
                   "tuned_lo DOUBLE, tuned_hi DOUBLE, delta DOUBLE, delta_lo DOUBLE, delta_hi DOUBLE, "
                   "forgotten INTEGER, learned INTEGER, base_method VARCHAR, tuned_method VARCHAR, "
                   "delta_method VARCHAR, p_mcnemar DOUBLE, p_holm DOUBLE, verdict VARCHAR",
    "entry_kl": "entry_id VARCHAR PRIMARY KEY, task VARCHAR, n_seq INTEGER, n_tokens BIGINT, settings JSON, "
                "fwd_seq DOUBLE, fwd_seq_lo DOUBLE, fwd_seq_hi DOUBLE, fwd_tok DOUBLE, fwd_tok_lo DOUBLE, "
                "fwd_tok_hi DOUBLE, rev_tok DOUBLE, rev_tok_lo DOUBLE, rev_tok_hi DOUBLE, tv_tok DOUBLE, "
                "tv_tok_lo DOUBLE, tv_tok_hi DOUBLE",
    "entry_forgotten": "entry_id VARCHAR, task VARCHAR, pos INTEGER, doc_id INTEGER, prompt VARCHAR, "
                       "base_response VARCHAR, tuned_response VARCHAR, base_score DOUBLE, tuned_score DOUBLE",
    "excluded": "folder VARCHAR, errors JSON",
}


TABLES = tuple(COLUMNS)
# The per-entry detail tables: an entry's task, KL and forgotten-item rows, in table_rows' order.
ENTRY_PARTS = TABLES[1:4]


NAMES = {t: [c.split()[0] for c in cols.split(", ")] for t, cols in COLUMNS.items()}
TYPES = {t: [c.split()[1] for c in cols.split(", ")] for t, cols in COLUMNS.items()}


# Rows per INSERT. One batch of all 10,000 entries' rows (~350,000) added ~350 MB to the builder's peak
# (as a DataFrame); batches of 50,000 hold ~35 MB. Larger batches insert faster (150,000: ~1 s less CPU
# for 10,000 entries, measured on a 2-core AVX2 EPYC), but most of this work overlaps the validation workers.
BATCH_ROWS = 50_000


def create(con) -> None:
    """The empty tables (COLUMNS) in a fresh DuckDB file."""
    for table, cols in COLUMNS.items():
        con.execute(f"CREATE TABLE {table} ({cols})")


class Writer:
    """Rows (tuples in NAMES order) into the tables of a DuckDB file, inserted in batches of about
    BATCH_ROWS; `flush()` inserts what is pending. `open()` makes the connection (with the tables), at
    the first insert: the leaderboard builder's validation workers are forked before DuckDB starts its
    threads. Simplification: each batch commits on its own (a failed build throws the whole file away)."""

    def __init__(self, open):
        self._open, self._con = open, None
        self.pending: dict[str, list[tuple]] = {t: [] for t in TABLES}
        self.n = 0

    @property
    def con(self):
        if self._con is None:
            self._con = self._open()
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()

    def add(self, table: str, rows) -> None:
        before = len(self.pending[table])
        self.pending[table].extend(rows)
        self.n += len(self.pending[table]) - before
        if self.n >= BATCH_ROWS:
            self.flush()

    def add_parts(self, parts) -> None:
        """One entry's detail rows (table_rows' task, KL and forgotten rows), each into its table."""
        for table, rows in zip(ENTRY_PARTS, parts, strict=True):
            self.add(table, rows)

    def flush(self) -> None:
        for table, rows in self.pending.items():
            if rows:
                batch = _batch(table, rows)  # noqa: F841 (read by duckdb)
                rows.clear()
                self.con.execute(f"INSERT INTO {table} SELECT * FROM batch")
                del batch
        self.n = 0


# The Arrow type of each DuckDB column type in COLUMNS (JSON columns arrive as text; DuckDB checks them).
_ARROW = {"VARCHAR": "string", "JSON": "string", "DOUBLE": "float64", "INTEGER": "int32", "BIGINT": "int64",
          "BOOLEAN": "bool_"}


def _batch(table: str, rows: list[tuple]):
    """Rows of `table` as an Arrow table with the columns' own types, which DuckDB reads without
    converting each Python object (1,500 entries' rows on a 2-core AVX2 EPYC: 0.32-0.43 s against
    0.36-0.66 s as a DataFrame of objects). NaN becomes NULL (from_pandas), as DuckDB reads a NaN in an
    object column. A value Arrow will not take as its column's type (by construction there is none)
    goes the DataFrame way: DuckDB's conversion and its error, as before."""
    import pyarrow as pa

    try:
        return _arrow(table, rows)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        import numpy as np
        import pandas as pd

        cells = np.empty((len(rows), len(NAMES[table])), dtype=object)
        cells[:] = rows
        return pd.DataFrame(cells, columns=NAMES[table], dtype=object, copy=False)


def _arrow(table: str, rows: list[tuple]):
    import pyarrow as pa

    cols = [pa.array(c, type=getattr(pa, _ARROW[ty])(), from_pandas=True)
            for c, ty in zip(zip(*rows), TYPES[table], strict=True)]
    return pa.Table.from_arrays(cols, names=NAMES[table])
