"""The store file's format: its tables (SCHEMA), the upgrades of older versions (MIGRATIONS), and the
keys derived from what a row holds (run_id, pair_id). No connection is kept here."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from functools import lru_cache

from forgetbench.records import PairReport
from forgetbench.runtime import dbfile

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
def expected_columns() -> dict[str, list]:
    """(column, type) per table of SCHEMA, as DuckDB itself reports them (an in-memory copy)."""
    con = dbfile.connect(":memory:")
    try:
        con.execute(SCHEMA)
        return table_columns(con)
    finally:
        con.close()


def table_columns(con) -> dict[str, list]:
    """(column, type) per table of an open store connection, in column order."""
    out: dict[str, list] = {}
    for t, c, ty in con.execute("SELECT table_name, column_name, data_type FROM information_schema.columns"
                                " ORDER BY table_name, ordinal_position").fetchall():
        out.setdefault(t, []).append((c, ty))
    return out


RESULT_TABLES = ("models", "runs", "items", "pairs", "pair_tasks", "kl_samples", "kl_items", "pair_kl")
# pair_kl's estimate columns, each with `_lo`/`_hi` beside it (the x axes of `forgetbench law`)
KL_COLUMNS = ("fwd_seq", "fwd_tok", "rev_tok", "tv_tok")


def run_id(model_hash: str, task: str, version: str, data_hash: str, gen_key: str) -> str:
    raw = "\x1f".join((model_hash, task, version, data_hash, gen_key))
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def pair_id(report: PairReport) -> str:
    """A pair's key: its two models, target and exact task runs (re-evaluating the same runs replaces it)."""
    runs = sorted(report.settings.get("run_ids", []))
    raw = "\x1f".join([report.base.content_hash, report.tuned.content_hash, report.target or "", *runs])
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def now() -> datetime:
    """The rows' created_at / first_seen: UTC, stored without a zone."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
