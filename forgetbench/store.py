"""The DuckDB store: models, task runs with every per-item result, and pair comparisons.

A task run is keyed by (model hash, task, task version, data hash, generation-settings hash) and is
written in one transaction with all its items, so an interrupted evaluation leaves either a whole
run or nothing, and a rerun skips what is done. Schema: README.md, "The DuckDB store".
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from .errors import UserError
from .records import ItemResult, ModelRef, PairReport, TaskRun

SCHEMA_VERSION = "1"

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
  created_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS pair_tasks (
  pair_id VARCHAR, task VARCHAR, metric VARCHAR, role VARCHAR, n INTEGER,
  base DOUBLE, base_lo DOUBLE, base_hi DOUBLE, tuned DOUBLE, tuned_lo DOUBLE, tuned_hi DOUBLE,
  delta DOUBLE, delta_lo DOUBLE, delta_hi DOUBLE, forgotten INTEGER, learned INTEGER,
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
    def __init__(self, path: str | Path, read_only: bool = False):
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise UserError(f"no store at {self.path}")
        if self.path.exists() and self.path.is_dir():
            raise UserError(f"{self.path} is a directory, not a DuckDB file")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)  # `--db results/new.duckdb` just works
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as e:
            if "lock" in str(e).lower():
                raise UserError(f"the store {self.path} is in use by another process") from e
            raise UserError(f"{self.path} is not a readable DuckDB file ({e})") from e
        except duckdb.Error as e:
            raise UserError(f"{self.path} is not a readable DuckDB file ({e})") from e
        self._check_or_create(read_only)

    def _check_or_create(self, read_only: bool) -> None:
        tables = {r[0] for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if tables and "meta" not in tables:
            raise UserError(f"{self.path} is a DuckDB file but not a forgetbench store (tables: {sorted(tables)})")
        if "meta" in tables:
            row = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None or row[0] != SCHEMA_VERSION:
                found = row[0] if row else "none"
                raise UserError(f"{self.path}: store schema version {found}, this forgetbench needs {SCHEMA_VERSION}")
        if read_only:
            return
        self.con.execute(SCHEMA)
        self.con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])

    def close(self) -> None:
        self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- models
    def put_model(self, m: ModelRef) -> None:
        self.con.execute(
            "INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [m.content_hash, m.spec, m.kind, m.path, m.revision, m.has_chat_template,
             json.dumps(m.meta, default=str), _now()],
        )

    # ---- runs
    def has_run(self, rid: str) -> bool:
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
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        return rid

    def get_run(self, rid: str) -> TaskRun:
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
                "INSERT INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [pid, report.base.content_hash, report.tuned.content_hash, report.target,
                 md.value if md else None, md.lo if md else None, md.hi if md else None,
                 json.dumps(report.settings, default=str), json.dumps(report_json, default=str), _now()],
            )
            for d in report.deltas:
                for metric, sub in [(d.metric, d), *sorted(d.sub.items())]:
                    self.con.execute(
                        "INSERT INTO pair_tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [pid, d.task, metric, d.role, sub.n, sub.base.value, sub.base.lo, sub.base.hi,
                         sub.tuned.value, sub.tuned.lo, sub.tuned.hi, sub.delta.value, sub.delta.lo,
                         sub.delta.hi, sub.forgotten, sub.learned],
                    )
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        return pid

    def put_pair_kl(self, pid: str, kl: dict) -> None:
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
