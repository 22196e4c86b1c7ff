"""Recompute every number of a results.json from its own per-item rows and compare (tolerance 1e-9).

Task aggregates go through forgetbench.stats.paired (columns_delta, with_tests, mean_drop): closed-form
intervals (forgetbench.stats), so an honest export reproduces them bit for bit, methods and p-values
included. KL estimates go through forgetbench.kl.estimate.summarize. The TaskSpec is the registry's, with the
entry's primary metric and the extra metrics its `sub` names, so an entry is checked against what it
claims to report. `aggregate_json` is the one definition of an aggregate's shape in results.json
(forgetbench.leaderboard.export writes it, this module checks it).

Format v1 entries (forgetbench <= 0.1: percentile-bootstrap CIs, no methods or tests): their point
values, n, flips and metrics are checked; their intervals are not (random replicates of a method
forgetbench no longer uses). `upgrade` replaces every aggregate by the recomputed v2 one, so the
leaderboard shows all entries with the same methods; re-exporting the pair writes the same numbers.
Expects a schema-valid results dict (forgetbench.leaderboard.schema.check_results).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from forgetbench import stats
from forgetbench.errors import UserError
from forgetbench.tasks.data import gen_key
from forgetbench.stats.paired import Columns, columns_delta, mean_drop, with_tests
from forgetbench.records import Estimate, TaskDelta, TaskSpec
from forgetbench.leaderboard.submission import FORMAT_VERSION, RESULTS_FILE, Problem
from forgetbench.leaderboard.checker import key_path

TOL = 1e-9
_ABSENT = object()  # a metric missing from an item (never equal to a score)
_EST = ("base", "tuned", "delta")


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOL, abs_tol=TOL)


def est_json(e: Estimate | None) -> dict | None:
    return None if e is None else {"value": e.value, "lo": e.lo, "hi": e.hi, "method": e.method}


def aggregate_json(d: TaskDelta, is_sub: bool = False) -> dict:
    """A task's (or a sub row's) aggregate as results.json v2 holds it."""
    out = {"n": d.n, **{k: est_json(getattr(d, k)) for k in _EST}, "forgotten": d.forgotten, "learned": d.learned,
           "p_mcnemar": d.p_mcnemar}
    if is_sub:
        return {"metric": d.metric, **out}
    return {**out, "p_holm": d.p_holm, "verdict": d.verdict,
            "sub": {k: aggregate_json(s, True) for k, s in d.sub.items()}}


def _spec(t: dict, spec: TaskSpec) -> TaskSpec:
    labels = {f"{spec.strata_key or 'stratum'}={i['stratum']}" for i in t["items"] if i["stratum"] is not None}
    extras = tuple(k for k in t["aggregate"]["sub"] if k not in labels)
    if (t["primary_metric"], extras) == (spec.primary_metric, spec.extra_metrics):
        return spec  # the usual case; replace() costs more than the rest of this function
    return replace(spec, primary_metric=t["primary_metric"], extra_metrics=extras)


def _columns(t: dict) -> Columns:
    """The entry's items as the paired columns task_delta would build (each item holds both sides; pairs
    in doc_id order, which _items_ok found unique), without an ItemResult per side."""
    items = sorted(t["items"], key=lambda i: i["doc_id"])
    b, tu = [i["base"] for i in items], [i["tuned"] for i in items]
    return Columns([i["doc_hash"] for i in items], [float(x["score"]) for x in b], [float(x["score"]) for x in tu],
                   [x["metrics"] for x in b], [x["metrics"] for x in tu], [i["cluster"] for i in items],
                   [i["stratum"] for i in items])


def _mismatch(out: list[Problem], path: str, got, want) -> None:
    out.append(Problem(RESULTS_FILE, path, f"is {got!r} but recomputing from the items gives {want!r}"))


def _same(got, want) -> bool:
    if type(got) is type(want) and got == want:
        return True  # an honest export: the same value bit for bit (the tolerance below rarely matters)
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return close(got, want)
    return False  # not a float to compare with the tolerance, and not the same value of the same type


def _compare(out: list[Problem], path: str, rec: dict, want: dict, v1: bool) -> None:
    """rec (stored) against want (aggregate_json of the recomputation); v1 records only by value."""
    for k, w in want.items():
        p = key_path(path, k)
        if k == "sub":
            for name in sorted(set(rec["sub"]) | set(w)):
                q = key_path(p, name)
                if name not in w:
                    out.append(Problem(RESULTS_FILE, q, "cannot be recomputed: the items carry no such metric or stratum"))
                elif name not in rec["sub"]:
                    out.append(Problem(RESULTS_FILE, q, "is missing (the items give this stratum/metric)"))
                else:
                    _compare(out, q, rec["sub"][name], w[name], v1)
        elif k in _EST:
            for f in ("value",) if v1 else ("value", "lo", "hi", "method"):
                if not _same(rec[k][f], w[f]):
                    _mismatch(out, f"{p}.{f}", rec[k][f], w[f])
        elif v1 and k not in ("n", "forgotten", "learned", "metric"):
            continue  # tests were not part of format v1
        elif not _same(rec.get(k), w):
            _mismatch(out, p, rec.get(k), w)


def _items_ok(out: list[Problem], t: dict, p: str) -> bool:
    for k in ("gen_key", "tuned_gen_key"):
        if k in t and t[k] != gen_key(t[k.replace("key", "settings")]):
            out.append(Problem(RESULTS_FILE, f"{p}.{k}", f"does not match {k.replace('key', 'settings')} (the key is"
                               " the hash of the settings)"))
    ids = [i["doc_id"] for i in t["items"]]
    if len(set(ids)) != len(ids):
        out.append(Problem(RESULTS_FILE, f"{p}.items", f"{len(ids) - len(set(ids))} duplicate doc_id(s)"))
        return False
    # The item score is the primary metric's value: a score that disagrees with it was edited.
    key = t["primary_metric"] if "," in t["primary_metric"] else f"{t['primary_metric']},none"
    sides = [it[side] for side in ("base", "tuned") for it in t["items"]]
    if all(s["metrics"].get(key, _ABSENT) == s["score"] for s in sides):
        return True  # exported scores equal their metric exactly; the loop below finds the first that does not
    for j, it in enumerate(t["items"]):
        for side in ("base", "tuned"):
            m = it[side]["metrics"]
            if key not in m:
                out.append(Problem(RESULTS_FILE, key_path(f"{p}.items[{j}].{side}.metrics", key),
                                   "is missing: every item carries its primary metric"))
                return False
            if not close(m[key], it[side]["score"]):
                out.append(Problem(RESULTS_FILE, f"{p}.items[{j}].{side}.score",
                                   f"is {it[side]['score']!r} but its metric {key} is {m[key]!r}"))
                return False
    return True


def duplicate_rows(t: dict) -> int:
    """Items whose doc_hash repeats another's: real data has some (cais/mmlu test: 27 exact duplicate
    rows), so this is reported as a warning, not an error."""
    hashes = [i["doc_hash"] for i in t["items"]]
    return len(hashes) - len(set(hashes))


def recompute(res: dict, tasks: dict[str, TaskSpec]) -> tuple[list[Problem], list[TaskDelta] | None]:
    """Every task's TaskDelta recomputed from its items, with the pair's tests (None when some task
    cannot be recomputed; the problems say why)."""
    out: list[Problem] = []
    deltas: list[TaskDelta] = []
    for i, t in enumerate(res["tasks"]):
        p, spec = f"tasks[{i}]", tasks.get(t["task"])
        if spec is None or not _items_ok(out, t, p):
            continue  # an unknown task is validate's error; bad items were reported
        try:
            with np.errstate(all="ignore"):
                deltas.append(columns_delta(_spec(t, spec), t["role"], _columns(t)))
        except (UserError, ValueError, ZeroDivisionError, FloatingPointError) as e:
            out.append(Problem(RESULTS_FILE, f"{p}.items", f"cannot recompute the aggregate: {e}"))
    return out, (with_tests(deltas) if len(deltas) == len(res["tasks"]) else None)


def check_tasks(res: dict, tasks: dict[str, TaskSpec]) -> list[Problem]:
    out, deltas = recompute(res, tasks)
    if deltas is None:
        return out  # the tests and mean_drop cannot be recomputed without every task
    v1 = res["format_version"] == 1
    if not v1 and res["intervals"] != stats.settings():
        out.append(Problem(RESULTS_FILE, "intervals", f"is {res['intervals']!r}, but this forgetbench computes"
                           f" {stats.settings()!r}; re-export the pair with `forgetbench export`"))
    for i, (t, d) in enumerate(zip(res["tasks"], deltas)):
        _compare(out, f"tasks[{i}].aggregate", t["aggregate"], aggregate_json(d), v1)
    md, rec = est_json(mean_drop(deltas)), res["mean_drop"]
    if (md is None) != (rec is None):
        out.append(Problem(RESULTS_FILE, "mean_drop", f"is {rec!r} but the tasks give {md!r}"))
    elif md is not None:
        for f in ("value",) if v1 else ("value", "lo", "hi", "method"):
            if not _same(rec[f], md[f]):
                _mismatch(out, f"mean_drop.{f}", rec[f], md[f])
    if not out and v1:
        upgrade(res, deltas)
    return out


def upgrade(res: dict, deltas: list[TaskDelta]) -> None:
    """Rewrite a results dict (in place) with these recomputed aggregates in the current format."""
    for t, d in zip(res["tasks"], deltas):
        t["aggregate"] = aggregate_json(d)
    res["mean_drop"] = est_json(mean_drop(deltas))
    res.pop("bootstrap", None)
    res["intervals"] = stats.settings()
    res["format_version"] = FORMAT_VERSION




def check_kl(kl: dict | None) -> list[Problem]:
    if kl is None:
        return []
    out: list[Problem] = []
    items = sorted(kl["items"], key=lambda x: x["seq"])
    if len({x["seq"] for x in items}) != len(items):
        return [Problem(RESULTS_FILE, "kl.items", "duplicate seq numbers")]
    if kl["n_seq"] != len(items):
        out.append(Problem(RESULTS_FILE, "kl.n_seq", f"is {kl['n_seq']} but kl.items has {len(items)} sequences"))
    n_tok = sum(x["n_tokens"] for x in items)
    if kl["n_tokens"] != n_tok:
        out.append(Problem(RESULTS_FILE, "kl.n_tokens", f"is {kl['n_tokens']} but kl.items sum to {n_tok}"))
    if n_tok == 0:
        return out + [Problem(RESULTS_FILE, "kl.items", "have no tokens")]
    from forgetbench.kl.estimate import SHORT_NAMES, KLItems, summarize

    col = lambda k: tuple(x[k] for x in items)  # noqa: E731
    s = kl["settings"]
    try:
        with np.errstate(all="ignore"):
            est = summarize(KLItems(col("fwd"), col("rev"), col("tv"), col("n_tokens"), col("prompt_index")),
                            n_boot=s.get("n_boot", stats.KL_N_BOOT), seed=s.get("boot_seed", stats.KL_BOOT_SEED))
    except (UserError, ValueError) as e:
        return out + [Problem(RESULTS_FILE, "kl.items", f"cannot recompute the KL estimates: {e}")]
    for theirs, ours in SHORT_NAMES.items():
        for f in ("value", "lo", "hi"):
            got, want = kl[ours][f], getattr(est[theirs], f)
            if not close(got, want):
                out.append(Problem(RESULTS_FILE, f"kl.{ours}.{f}", f"is {got!r} but recomputing from kl.items"
                                   f" gives {want!r}"))
    return out


def check_numbers(res: dict, tasks: dict[str, TaskSpec]) -> list[Problem]:
    return check_tasks(res, tasks) + check_kl(res["kl"])
