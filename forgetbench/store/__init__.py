"""The DuckDB results store (`--db`, default forgetbench.duckdb): every SQL statement on a store file
is in this package; other modules call Store's methods and get typed rows back.

Tables (columns: README.md, "The DuckDB store"; DDL and upgrades: schema.py):
- meta: schema_version.
- models: one row per model content hash (put_model).
- runs + items: a model scored on a task's rows under fixed generation settings, every item's prompt,
  response and score (put_run; get_run, has_run, run_headers, items_by_doc_hash).
- pairs + pair_tasks + pair_kl: a base/tuned comparison, its per-task (and per-metric/stratum) rows and
  its forward-KL estimate (put_pair; pairs_by_prefix, pairs_of, recent_pairs, pair_kl, kl_pair_rows,
  probe_deltas).
- kl_samples, kl_items: the KL caches. A base model's sampled completions (one "sample set" per base,
  task rows and KL settings) and a tuned model's per-completion KL terms along them (put_kl_samples,
  put_kl_items; kl_samples, kl_items, kl_sample_sets).

Who owns what: schema.py the format (tables, migrations, run_id/pair_id keys); db.py the Store, its
file checks and its one connection; writes.py every write; queries.py every read; rows.py the typed rows.
Callers: eval (runs, models, the pair), kl.pair (the KL caches), kl.law and leaderboard.export (reads).
The leaderboard's own site file (leaderboard.duckdb, forgetbench.leaderboard.build) is a different
file with its own format and is not this package's.

Transaction rule: one transaction per logical write, so a failure leaves the store as it was:
a run with all its items; a pair with its pair_tasks rows and its pair_kl row; a sample set; a tuned
model's KL terms on one sample set; a schema upgrade. The KL caches are written as soon as they are
computed, apart from their pair: they are the slow part, and a failed pair write must not lose them.

Simplifications: reads are not wrapped in a transaction (one process writes a store at a time);
`Store.con` remains for tests that set up or inspect rows; a pair re-stored without KL keeps an older
pair_kl row of the same pair_id.
"""

from forgetbench.store.db import Store
from forgetbench.store.schema import SCHEMA_VERSION, pair_id, run_id

__all__ = ["SCHEMA_VERSION", "Store", "pair_id", "run_id"]
