"""Every read of the store file, as typed rows: what eval (cached runs), KL (cached samples and terms),
`forgetbench export` (a pair with its runs, items and KL) and `forgetbench law` (pairs with KL and their
probe drops) need. JSON columns come back parsed, except law's report (its reader tolerates a bad one).

A mixin of forgetbench.store.db.Store, which owns the connection (`_con`). Reads that a store written
before a table existed can reach (pair_kl) return nothing rather than failing.
"""

from __future__ import annotations

import json

from forgetbench.records import ItemResult, TaskRun
from forgetbench.store.schema import KL_COLUMNS, RESULT_TABLES
from forgetbench.store.rows import KLItem, KLPairRow, KLSample, PairKL, ProbeDelta, RunHeader, StoredModel, StoredPair

_PAIR_COLS = "pair_id, base_hash, tuned_hash, target, settings, report, created_at"
_ITEM_COLS = "doc_id, doc_hash, prompt, response, score, metrics, cluster, stratum"


def _item(r: tuple) -> ItemResult:
    return ItemResult(doc_id=r[0], doc_hash=r[1], prompt=r[2], response=r[3], score=r[4],
                      metrics=json.loads(r[5]), cluster=r[6], stratum=r[7])


def _pair(r: tuple) -> StoredPair:
    return StoredPair(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), r[6])


class StoreReads:
    # ---- runs
    def has_run(self, rid: str) -> bool:
        with self._guard("looking up a run"):
            return self._con.execute("SELECT 1 FROM runs WHERE run_id = ?", [rid]).fetchone() is not None

    def get_run(self, rid: str) -> TaskRun:
        """The run with its items in doc_id order; KeyError if it is not stored."""
        with self._guard("reading a run"):
            row = self._con.execute(
                "SELECT model_hash, task, task_version, data_hash, gen_key, gen_settings, provenance"
                " FROM runs WHERE run_id = ?", [rid]
            ).fetchone()
            if row is None:
                raise KeyError(rid)
            items = self._con.execute(f"SELECT {_ITEM_COLS} FROM items WHERE run_id = ? ORDER BY doc_id",
                                      [rid]).fetchall()
        return TaskRun(model_hash=row[0], task=row[1], task_version=row[2], data_hash=row[3], gen_key=row[4],
                       gen_settings=json.loads(row[5]), provenance=json.loads(row[6]),
                       items=tuple(map(_item, items)))

    def run_headers(self, run_ids: list[str], model_hash: str, task: str) -> list[RunHeader]:
        """The runs among `run_ids` of this model on this task (one, in a complete store)."""
        rows = self._con.execute(
            "SELECT run_id, task_version, data_hash, gen_key, gen_settings FROM runs"
            " WHERE run_id IN (SELECT unnest(?::VARCHAR[])) AND model_hash = ? AND task = ?",
            [run_ids, model_hash, task]).fetchall()
        return [RunHeader(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def items_by_doc_hash(self, rid: str) -> list[ItemResult]:
        """A run's items ordered by (doc_hash, doc_id): how forgetbench.stats.paired pairs two runs."""
        return [_item(r) for r in self._con.execute(
            f"SELECT {_ITEM_COLS} FROM items WHERE run_id = ? ORDER BY doc_hash, doc_id", [rid]).fetchall()]

    def counts(self) -> dict[str, int]:
        """Rows per result table."""
        return {t: self._con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in RESULT_TABLES}

    # ---- models and pairs
    def models(self) -> list[StoredModel]:
        """Every stored model, ordered by spec."""
        rows = self._con.execute("SELECT model_hash, spec, kind, path, revision, meta FROM models ORDER BY spec").fetchall()
        return [StoredModel(h, s, k, p, r, json.loads(m) if m else {}) for h, s, k, p, r, m in rows]

    def pairs_by_prefix(self, prefix: str) -> list[StoredPair]:
        """Pairs whose pair_id starts with `prefix` (a LIKE pattern), by pair_id."""
        return [_pair(r) for r in self._con.execute(
            f"SELECT {_PAIR_COLS} FROM pairs WHERE pair_id LIKE ? || '%' ORDER BY pair_id", [prefix]).fetchall()]

    def pairs_of(self, base_hash: str, tuned_hash: str, target: str | None = None) -> list[StoredPair]:
        """Pairs of these two models, newest first; target None: any target."""
        sql, args = f"SELECT {_PAIR_COLS} FROM pairs WHERE base_hash = ? AND tuned_hash = ?", [base_hash, tuned_hash]
        if target is not None:
            sql, args = sql + " AND target IS NOT DISTINCT FROM ?", [*args, target]
        return [_pair(r) for r in self._con.execute(sql + " ORDER BY created_at DESC", args).fetchall()]

    def recent_pairs(self, limit: int = 20) -> list[StoredPair]:
        return [_pair(r) for r in self._con.execute(
            f"SELECT {_PAIR_COLS} FROM pairs ORDER BY created_at DESC LIMIT ?", [limit]).fetchall()]

    # ---- KL
    def _has_table(self, name: str) -> bool:
        return self._con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                                 [name]).fetchone()[0] > 0

    def pair_kl(self, pid: str) -> PairKL | None:
        """The pair's KL row, or None (no row, or a store from before the pair_kl table)."""
        if not self._has_table("pair_kl"):
            return None
        est = ", ".join(f"{c}, {c}_lo, {c}_hi" for c in KL_COLUMNS)
        r = self._con.execute("SELECT task, m_prompts, k_samples, max_new_tokens, seed, dtype, n_seq, n_tokens, "
                              f"{est}, settings FROM pair_kl WHERE pair_id = ?", [pid]).fetchone()
        if r is None:
            return None
        estimates = {c: tuple(r[8 + 3 * i:11 + 3 * i]) for i, c in enumerate(KL_COLUMNS)}
        return PairKL(*r[:8], estimates=estimates, settings=json.loads(r[-1]) if r[-1] else {})

    def kl_sample_sets(self, base_hash: str, task: str, tuned_hash: str) -> list[str]:
        """Sample sets drawn from this base on this task that have KL terms for this tuned model."""
        return [r[0] for r in self._con.execute(
            "SELECT DISTINCT s.sample_set FROM kl_samples s JOIN kl_items i USING (sample_set)"
            " WHERE s.base_hash = ? AND s.task = ? AND i.tuned_hash = ?", [base_hash, task, tuned_hash]).fetchall()]

    def kl_samples(self, sample_set: str) -> list[KLSample]:
        """A sample set's base completions in seq order ([] if it was never drawn)."""
        return [KLSample(seq, pi, doc, tuple(p), tuple(c)) for seq, pi, doc, p, c in self._con.execute(
            "SELECT seq, prompt_index, doc_id, prompt_ids, completion_ids FROM kl_samples WHERE sample_set = ?"
            " ORDER BY seq", [sample_set]).fetchall()]

    def kl_items(self, sample_set: str, tuned_hash: str) -> list[KLItem]:
        """A tuned model's KL terms along a sample set in seq order ([] if not computed)."""
        return [KLItem(*r) for r in self._con.execute(
            "SELECT seq, prompt_index, n_tokens, fwd, rev, tv FROM kl_items WHERE sample_set = ? AND tuned_hash = ?"
            " ORDER BY seq", [sample_set, tuned_hash]).fetchall()]

    def kl_pair_rows(self, x: str) -> list[KLPairRow]:
        """Every pair whose pair_kl column `x` (one of KL_COLUMNS) is finite, ordered by x then pair_id."""
        if x not in KL_COLUMNS:
            raise ValueError(f"x must be one of {KL_COLUMNS}, not {x!r}")  # it is put into the SQL text
        if not self._has_table("pair_kl"):
            return []
        return [KLPairRow(*r) for r in self._con.execute(
            f"""SELECT p.pair_id, coalesce(bm.spec, p.base_hash), coalesce(tm.spec, p.tuned_hash), p.target,
                       coalesce(p.settings->>'method', tm.meta->>'method'), k.task, k.{x}, k.{x}_lo, k.{x}_hi,
                       p.mean_drop, p.mean_drop_lo, p.mean_drop_hi, p.report
                FROM pair_kl k JOIN pairs p USING (pair_id)
                LEFT JOIN models bm ON bm.model_hash = p.base_hash
                LEFT JOIN models tm ON tm.model_hash = p.tuned_hash
                WHERE isfinite(k.{x}) ORDER BY k.{x}, p.pair_id""").fetchall()]

    def probe_deltas(self) -> list[ProbeDelta]:
        """Every probe row of pair_tasks (all pairs)."""
        return [ProbeDelta(*r) for r in self._con.execute(
            "SELECT pair_id, task, metric, delta, delta_lo, delta_hi FROM pair_tasks WHERE role = 'probe'").fetchall()]
