"""The DuckDB results store: models, task runs with their per-item rows, pairs with their tests and KL.
Every SQL statement on a store file is in this package (forgetbench.store.db)."""

from forgetbench.store.db import SCHEMA_VERSION, Store, pair_id, run_id

__all__ = ["SCHEMA_VERSION", "Store", "pair_id", "run_id"]
