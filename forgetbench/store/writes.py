"""Every write to the store file, each logical write in one transaction (Store._transaction):
a task run with its items; a pair with its per-task rows and its KL row; a KL sample set; a tuned
model's KL terms on one sample set. A model row is one statement (INSERT OR IGNORE).

A mixin of forgetbench.store.db.Store, which owns the connection (`_con`) and the transaction.
"""

from __future__ import annotations

import json

from forgetbench.records import ModelRef, PairReport, TaskRun
from forgetbench.store.rows import KLItem, KLSample
from forgetbench.store.schema import KL_COLUMNS, now, pair_id, run_id


class StoreWrites:
    def put_model(self, m: ModelRef) -> None:
        """Record a model once (a later record of the same content hash is ignored)."""
        with self._guard("recording a model"):
            self._con.execute(
                "INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [m.content_hash, m.spec, m.kind, m.path, m.revision, m.has_chat_template,
                 json.dumps(m.meta, default=str), now()],
            )

    def put_run(self, run: TaskRun) -> str:
        """Write (or replace) a task run with all its items in one transaction; returns its run_id."""
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
        with self._transaction("writing a run") as con:
            con.execute("DELETE FROM items WHERE run_id = ?", [rid])
            con.execute("DELETE FROM runs WHERE run_id = ?", [rid])
            con.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [rid, run.model_hash, run.task, run.task_version, run.data_hash, run.gen_key,
                 json.dumps(run.gen_settings, default=str), json.dumps(run.provenance, default=str),
                 len(run.items), score, now()],
            )
            con.register("_fb_items", items)
            con.execute(
                "INSERT INTO items SELECT run_id, doc_id, doc_hash, cluster, stratum, prompt, response,"
                " score, metrics::JSON FROM _fb_items"
            )
            con.unregister("_fb_items")
        return rid

    def put_pair(self, report: PairReport, report_json: dict) -> str:
        """Write (or replace) a pair, its pair_tasks rows and, when report.kl is set, its pair_kl row, in
        one transaction: a failure anywhere leaves the store as it was. Returns the pair_id.

        report.kl is the dict forgetbench.kl.pair.pair_kl returns: task, settings (m_prompts, k_samples,
        max_new_tokens, seed, dtype, ...), n_seq, n_tokens and {value, lo, hi} per KL_COLUMNS name.
        A pair re-stored without KL keeps an older pair_kl row of the same pair_id (as before the
        store owned the whole write)."""
        pid = report.pair_id or pair_id(report)  # eval.run sets it (its report JSON carries it)
        md = report.mean_drop
        with self._transaction("writing a pair") as con:
            con.execute("DELETE FROM pair_tasks WHERE pair_id = ?", [pid])
            con.execute("DELETE FROM pairs WHERE pair_id = ?", [pid])
            con.execute(
                "INSERT INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [pid, report.base.content_hash, report.tuned.content_hash, report.target,
                 md.value if md else None, md.lo if md else None, md.hi if md else None,
                 json.dumps(report.settings, default=str), json.dumps(report_json, default=str), now(),
                 md.method if md else None],
            )
            for d in report.deltas:
                for metric, sub in [(d.metric, d), *sorted(d.sub.items())]:
                    con.execute(
                        "INSERT INTO pair_tasks VALUES (" + ", ".join("?" * 22) + ")",
                        [pid, d.task, metric, d.role, sub.n, sub.base.value, sub.base.lo, sub.base.hi,
                         sub.tuned.value, sub.tuned.lo, sub.tuned.hi, sub.delta.value, sub.delta.lo,
                         sub.delta.hi, sub.forgotten, sub.learned, sub.base.method, sub.tuned.method,
                         sub.delta.method, sub.p_mcnemar, sub.p_holm, sub.verdict],
                    )
            if report.kl:
                self._insert_pair_kl(con, pid, report.kl)
        return pid

    def _insert_pair_kl(self, con, pid: str, kl: dict) -> None:
        """The pair_kl row of put_pair, inside its transaction."""
        st = kl["settings"]
        cols = [v for k in KL_COLUMNS for v in (kl[k]["value"], kl[k]["lo"], kl[k]["hi"])]
        con.execute(
            "INSERT OR REPLACE INTO pair_kl VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
            + ", ".join("?" * len(cols)) + ", ?, ?)",
            [pid, kl["task"], st["m_prompts"], st["k_samples"], st["max_new_tokens"], st["seed"], st["dtype"],
             kl["n_seq"], kl["n_tokens"], *cols, json.dumps(st), now()],
        )

    def put_kl_samples(self, sample_set: str, base_hash: str, task: str, data_hash: str, settings: dict,
                       samples: list[KLSample]) -> None:
        """A base model's KL sample set (its completions), in one transaction. Written as soon as it is
        drawn, apart from the pair: sampling is the slow part and a later pair of the same base reuses it."""
        st = json.dumps(settings)
        rows = [(sample_set, base_hash, task, data_hash, st, s.seq, s.prompt_index, s.doc_id,
                 list(s.prompt_ids), list(s.completion_ids)) for s in samples]
        with self._transaction("writing KL samples") as con:
            con.executemany("INSERT OR REPLACE INTO kl_samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def put_kl_items(self, sample_set: str, tuned_hash: str, items: list[KLItem]) -> None:
        """A tuned model's KL terms along a sample set, in one transaction (kept apart from the pair,
        like the samples, so a rerun recomputes nothing)."""
        rows = [(sample_set, tuned_hash, i.seq, i.prompt_index, i.n_tokens, i.fwd, i.rev, i.tv) for i in items]
        with self._transaction("writing KL terms") as con:
            con.executemany("INSERT OR REPLACE INTO kl_items VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
