"""The DuckDB store: models, task runs with every per-item result, and pair comparisons.

A task run is keyed by (model hash, task, task version, data hash, generation-settings hash) and is
written in one transaction with all its items, so an interrupted evaluation leaves either a whole
run or nothing, and a rerun skips what is done. Schema: README.md, "The DuckDB store".
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import duckdb

from forgetbench.runtime import dbfile
from forgetbench.errors import UserError
from forgetbench.records import ItemResult, ModelRef, PairReport, TaskRun

SCHEMA_VERSION = "2"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS models (
  model_hash VARCHAR PRIMARY KEY, spec VARCHAR, kind VARCHAR, path VARCHAR, revision VARCHAR,
  has_chat_template BOOLEAN, meta JSON, first_seen TIMESTAMP);
CREATE TABLE IF NOT EXISTS runs (
  run_id VARCHAR PRIMARY KEY, model_hash VARCHAR, task VARCHAR, task_version VARCHAR,
  data_hash VARCHAR, gen_key VARCHAR, gen_settings JSON, provenance JSON, n_items INTEGER,
  score DOUBLE, created_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS items (
  run_id VARCHAR, doc_id INTEGER, doc_hash VARCHAR, cluster VARCHAR, stratum VARCHAR,
  prompt VARCHAR, response VARCHAR, score DOUBLE, metrics JSON, PRIMARY KEY (run_id, doc_id));
CREATE TABLE IF NOT EXISTS pairs (
  pair_id VARCHAR PRIMARY KEY, base_hash VARCHAR, tuned_hash VARCHAR, target VARCHAR,
  mean_drop DOUBLE, mean_drop_lo DOUBLE, mean_drop_hi DOUBLE, settings JSON, report JSON,
  created_at TIMESTAMP, mean_drop_method VARCHAR);
CREATE TABLE IF NOT EXISTS pair_tasks (
  pair_id VARCHAR, task VARCHAR, metric VARCHAR, role VARCHAR, n INTEGER,
  base DOUBLE, base_lo DOUBLE, base_hi DOUBLE, tuned DOUBLE, tuned_lo DOUBLE, tuned_hi DOUBLE,
  delta DOUBLE, delta_lo DOUBLE, delta_hi DOUBLE, forgotten INTEGER, learned INTEGER,
  base_method VARCHAR, tuned_method VARCHAR, delta_method VARCHAR, p_mcnemar DOUBLE, p_holm DOUBLE, verdict VARCHAR,
  PRIMARY KEY (pair_id, task, metric));
CREATE TABLE IF NOT EXISTS kl_samples (
  sample_set VARCHAR, base_hash VARCHAR, task VARCHAR, data_hash VARCHAR, settings JSON,
  seq INTEGER, prompt_index INTEGER, doc_id INTEGER, prompt_ids INTEGER[], completion_ids INTEGER[],
  PRIMARY KEY (sample_set, seq));
CREATE TABLE IF NOT EXISTS kl_items (
  sample_set VARCHAR, tuned_hash VARCHAR, seq INTEGER, prompt_index INTEGER, n_tokens INTEGER,
  fwd DOUBLE, rev DOUBLE, tv DOUBLE, PRIMARY KEY (sample_set, tuned_hash, seq));
CREATE TABLE IF NOT EXISTS pair_kl (
  pair_id VARCHAR PRIMARY KEY, task VARCHAR, m_prompts INTEGER, k_samples INTEGER, max_new_tokens INTEGER,
  seed INTEGER, dtype VARCHAR, n_seq INTEGER, n_tokens BIGINT,
  fwd_seq DOUBLE, fwd_seq_lo DOUBLE, fwd_seq_hi DOUBLE, fwd_tok DOUBLE, fwd_tok_lo DOUBLE, fwd_tok_hi DOUBLE,
  rev_tok DOUBLE, rev_tok_lo DOUBLE, rev_tok_hi DOUBLE, tv_tok DOUBLE, tv_tok_lo DOUBLE, tv_tok_hi DOUBLE,
  settings JSON, created_at TIMESTAMP);
"""

# Additive upgrades of older stores, run in one transaction when a store is opened for writing: rows
# are never rewritten or dropped. Version 1 -> 2: interval methods and paired tests (issue 10); the
# intervals already stored were percentile-bootstrap CIs, which their new method columns say.
_OLD_METHOD = "percentile-bootstrap"
MIGRATIONS = {
    "1": [
        "ALTER TABLE pairs ADD COLUMN mean_drop_method VARCHAR",
        f"UPDATE pairs SET mean_drop_method = '{_OLD_METHOD}' WHERE mean_drop IS NOT NULL",
        *(f"ALTER TABLE pair_tasks ADD COLUMN {c}" for c in (
            "base_method VARCHAR", "tuned_method VARCHAR", "delta_method VARCHAR", "p_mcnemar DOUBLE",
            "p_holm DOUBLE", "verdict VARCHAR")),
        f"UPDATE pair_tasks SET base_method = '{_OLD_METHOD}', tuned_method = '{_OLD_METHOD}',"
        f" delta_method = '{_OLD_METHOD}'",
        "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
    ],
}


@lru_cache(maxsize=1)
def _expected_columns() -> dict[str, list]:
    """(column, type) per table of SCHEMA, as DuckDB itself reports them (an in-memory copy)."""
    con = dbfile.connect(":memory:")
    try:
        con.execute(SCHEMA)
        out: dict[str, list] = {}
        for t, c, ty in con.execute("SELECT table_name, column_name, data_type FROM information_schema.columns"
                                    " ORDER BY table_name, ordinal_position").fetchall():
            out.setdefault(t, []).append((c, ty))
        return out
    finally:
        con.close()


_SCANNED: set[tuple] = set()  # (path, inode, size, mtime) of store files this process has read in full

_RESULT_TABLES = ("models", "runs", "items", "pairs", "pair_tasks", "kl_samples", "kl_items", "pair_kl")


def run_id(model_hash: str, task: str, version: str, data_hash: str, gen_key: str) -> str:
    raw = "\x1f".join((model_hash, task, version, data_hash, gen_key))
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def _now():
    return datetime.now(timezone.utc).replace(tzinfo=None)


def pair_id(report: PairReport) -> str:
    """A pair's key: its two models, target and exact task runs (re-evaluating the same runs replaces it)."""
    runs = sorted(report.settings.get("run_ids", []))
    raw = "\x1f".join([report.base.content_hash, report.tuned.content_hash, report.target or "", *runs])
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


class Store:
    """The store file at `path`. Opening it never modifies a file that is not a healthy forgetbench
    store of this schema: the header is sniffed and the tables are inspected on a read-only
    connection first, and every fault becomes a UserError naming the real cause (forgetbench.runtime.dbfile)."""

    def __init__(self, path: str | Path, read_only: bool = False):
        self.path = Path(path)
        self._old: str | None = None  # an older schema version, migrated when opened for writing
        exists = self.path.exists()
        if read_only and not exists:
            raise UserError(f"no store at {self.path}")
        if exists and self.path.is_dir():
            raise UserError(f"{self.path} is a directory, not a DuckDB file")
        if exists:
            why = dbfile.refusal(self.path)
            if why:
                raise UserError(f"{self.path} {why}; forgetbench did not change it (use another --db)")
            with self._guard():
                con = dbfile.connect(self.path, read_only=True)
                try:
                    self._check(con, read_only)
                finally:
                    con.close()
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)  # `--db results/new.duckdb` just works
            except OSError as e:
                raise UserError(dbfile.explain(e, self.path)) from e
        with self._guard():
            self.con = dbfile.connect(self.path, read_only=read_only)
        if not read_only:
            with self._guard():
                self.con.execute(SCHEMA)
                self.con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
            if self._old is not None:
                self._migrate(self._old)

    def _migrate(self, found: str) -> None:
        """Upgrade a store of schema `found` to SCHEMA_VERSION in one transaction (nothing is lost)."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            for sql in MIGRATIONS[found]:
                self.con.execute(sql)
            self.con.execute("COMMIT")
        except Exception as e:
            self._rollback(e)
            raise
        self._old = None

    @contextmanager
    def _guard(self, doing: str = ""):
        """DuckDB and OS errors on this file -> one UserError line with the real cause."""
        try:
            yield
        except (duckdb.Error, OSError) as e:
            raise UserError(dbfile.explain(e, self.path) + (f" [{doing}]" if doing else "")) from e

    def _check(self, con, read_only: bool) -> None:
        """Refuse a foreign, newer or structurally damaged file (read-only connection; nothing written)."""
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if not tables:
            if read_only:
                raise UserError(f"{self.path} is an empty DuckDB file, not a forgetbench store (nothing stored yet)")
            return
        if "meta" not in tables:
            raise UserError(f"{self.path} is a DuckDB file but not a forgetbench store (tables: {sorted(tables)[:8]});"
                            " forgetbench did not change it")
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        found = row[0] if row else "none"
        if found in MIGRATIONS:
            self._old = found  # readable as is; migrated when opened for writing
        elif found != SCHEMA_VERSION:
            newer = str(found).isdigit() and int(found) > int(SCHEMA_VERSION)
            raise UserError(f"{self.path}: store schema version {found}, this forgetbench reads {SCHEMA_VERSION}"
                            + ("; it was written by a newer forgetbench: upgrade forgetbench" if newer else "")
                            + " (the file was not changed)")
        want = _expected_columns()
        got: dict[str, list] = {}
        for t, c, ty in con.execute("SELECT table_name, column_name, data_type FROM information_schema.columns"
                                    " ORDER BY table_name, ordinal_position").fetchall():
            got.setdefault(t, []).append((c, ty))
        for t in sorted(set(got) & set(want)):
            if self._old is not None and got[t] == want[t][:len(got[t])]:
                continue  # the migration adds the missing columns
            if got[t] != want[t] and got[t] == want[t][:len(got[t])]:
                raise UserError(f"{self.path}: table {t} lacks the columns {', '.join(c for c, _ in want[t][len(got[t]):])}"
                                " of this forgetbench's store: it was written by an older forgetbench (the file was"
                                " not changed)")
            if got[t] != want[t]:
                raise UserError(f"the store {self.path} is damaged: table {t} has columns"
                                f" {', '.join(c for c, _ in got[t])[:200]}; a forgetbench store's {t} has"
                                f" {', '.join(c for c, _ in want[t])} (forgetbench did not change the file)")
        if not read_only:
            self._scan(con, sorted(set(got) & set(want)))

    def _scan(self, con, tables: list[str]) -> None:
        """Read every block of every table before writing to the file: DuckDB checks a block's checksum
        only when it reads it, so a damaged page would otherwise surface mid-evaluation, after this run
        had written to the file. ~10 ms per MB; skipped when this process already scanned the file as
        it is now."""
        st = self.path.stat()
        key = (str(self.path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
        if key in _SCANNED:
            return
        for t in tables:
            con.execute(f"SELECT sum(hash(COLUMNS(*))) FROM {t}").fetchall()
        _SCANNED.add(key)

    def close(self) -> None:
        with self._guard("closing"):
            self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.close()
        except UserError:
            if exc is None:  # a failed close must not hide the error that is already on its way
                raise

    def _rollback(self, cause: Exception) -> None:
        """Undo a failed write. When the failure was the file (full disk, read-only, damage), DuckDB has
        often already aborted the transaction and ROLLBACK itself fails ("no transaction is active"):
        that must not hide the real cause, which is raised as one clear UserError."""
        try:
            self.con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        if isinstance(cause, OSError) or (isinstance(cause, duckdb.Error) and not isinstance(
                cause, (duckdb.ConstraintException, duckdb.ConversionException))):
            raise UserError(dbfile.explain(cause, self.path)) from cause

    # ---- models
    def put_model(self, m: ModelRef) -> None:
        with self._guard("recording a model"):
            self._put_model(m)

    def _put_model(self, m: ModelRef) -> None:
        self.con.execute(
            "INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [m.content_hash, m.spec, m.kind, m.path, m.revision, m.has_chat_template,
             json.dumps(m.meta, default=str), _now()],
        )

    # ---- runs
    def has_run(self, rid: str) -> bool:
        with self._guard("looking up a run"):
            return self.con.execute("SELECT 1 FROM runs WHERE run_id = ?", [rid]).fetchone() is not None

    def put_run(self, run: TaskRun) -> str:
        import pandas as pd

        rid = run_id(run.model_hash, run.task, run.task_version, run.data_hash, run.gen_key)
        items = pd.DataFrame(
            {
                "run_id": rid,
                "doc_id": [i.doc_id for i in run.items],
                "doc_hash": [i.doc_hash for i in run.items],
                "cluster": [i.cluster for i in run.items],
                "stratum": [i.stratum for i in run.items],
                "prompt": [i.prompt for i in run.items],
                "response": [i.response for i in run.items],
                "score": [float(i.score) for i in run.items],
                "metrics": [json.dumps(i.metrics) for i in run.items],
            }
        )
        # The run's headline score is the task's primary aggregate: the mean of per-stratum means
        # where items carry a stratum (safety), else the plain mean.
        if len(items) and items["stratum"].notna().any():
            score = float(items.groupby("stratum")["score"].mean().mean())
        else:
            score = float(items["score"].mean()) if len(items) else None
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("DELETE FROM items WHERE run_id = ?", [rid])
            self.con.execute("DELETE FROM runs WHERE run_id = ?", [rid])
            self.con.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [rid, run.model_hash, run.task, run.task_version, run.data_hash, run.gen_key,
                 json.dumps(run.gen_settings, default=str), json.dumps(run.provenance, default=str),
                 len(run.items), score, _now()],
            )
            self.con.register("_fb_items", items)
            self.con.execute(
                "INSERT INTO items SELECT run_id, doc_id, doc_hash, cluster, stratum, prompt, response,"
                " score, metrics::JSON FROM _fb_items"
            )
            self.con.unregister("_fb_items")
            self.con.execute("COMMIT")
        except Exception as e:
            self._rollback(e)
            raise
        return rid

    def get_run(self, rid: str) -> TaskRun:
        with self._guard("reading a run"):
            return self._get_run(rid)

    def _get_run(self, rid: str) -> TaskRun:
        row = self.con.execute(
            "SELECT model_hash, task, task_version, data_hash, gen_key, gen_settings, provenance"
            " FROM runs WHERE run_id = ?", [rid]
        ).fetchone()
        if row is None:
            raise KeyError(rid)
        items = self.con.execute(
            "SELECT doc_id, doc_hash, prompt, response, score, metrics, cluster, stratum"
            " FROM items WHERE run_id = ? ORDER BY doc_id", [rid]
        ).fetchall()
        return TaskRun(
            model_hash=row[0], task=row[1], task_version=row[2], data_hash=row[3], gen_key=row[4],
            gen_settings=json.loads(row[5]), provenance=json.loads(row[6]),
            items=tuple(
                ItemResult(doc_id=i[0], doc_hash=i[1], prompt=i[2], response=i[3], score=i[4],
                           metrics=json.loads(i[5]), cluster=i[6], stratum=i[7])
                for i in items
            ),
        )

    # ---- pairs
    def put_pair(self, report: PairReport, report_json: dict) -> str:
        pid = pair_id(report)
        md = report.mean_drop
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("DELETE FROM pair_tasks WHERE pair_id = ?", [pid])
            self.con.execute("DELETE FROM pairs WHERE pair_id = ?", [pid])
            self.con.execute(
                "INSERT INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [pid, report.base.content_hash, report.tuned.content_hash, report.target,
                 md.value if md else None, md.lo if md else None, md.hi if md else None,
                 json.dumps(report.settings, default=str), json.dumps(report_json, default=str), _now(),
                 md.method if md else None],
            )
            for d in report.deltas:
                for metric, sub in [(d.metric, d), *sorted(d.sub.items())]:
                    self.con.execute(
                        "INSERT INTO pair_tasks VALUES (" + ", ".join("?" * 22) + ")",
                        [pid, d.task, metric, d.role, sub.n, sub.base.value, sub.base.lo, sub.base.hi,
                         sub.tuned.value, sub.tuned.lo, sub.tuned.hi, sub.delta.value, sub.delta.lo,
                         sub.delta.hi, sub.forgotten, sub.learned, sub.base.method, sub.tuned.method,
                         sub.delta.method, sub.p_mcnemar, sub.p_holm, sub.verdict],
                    )
            self.con.execute("COMMIT")
        except Exception as e:
            self._rollback(e)
            raise
        return pid

    def put_pair_kl(self, pid: str, kl: dict) -> None:
        with self._guard("writing the pair's KL"):
            self._put_pair_kl(pid, kl)

    def _put_pair_kl(self, pid: str, kl: dict) -> None:
        st = kl["settings"]
        cols = [v for k in ("fwd_seq", "fwd_tok", "rev_tok", "tv_tok") for v in (kl[k]["value"], kl[k]["lo"], kl[k]["hi"])]
        self.con.execute(
            "INSERT OR REPLACE INTO pair_kl VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
            + ", ".join("?" * len(cols)) + ", ?, ?)",
            [pid, kl["task"], st["m_prompts"], st["k_samples"], st["max_new_tokens"], st["seed"], st["dtype"],
             kl["n_seq"], kl["n_tokens"], *cols, json.dumps(st), _now()],
        )

    def counts(self) -> dict[str, int]:
        return {t: self.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in _RESULT_TABLES}
