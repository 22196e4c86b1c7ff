"""Recompute every number of a results.json from its own per-item rows and compare (tolerance 1e-9).

Task aggregates go through forgetbench.metrics.task_delta_with_reps with the recorded bootstrap
n_boot/seed, so an honest export reproduces them bit for bit (each task draws from its own seeded
stream); mean_drop is the replicate-wise mean over the probes; KL estimates go through
forgetbench.kl.summarize. The TaskSpec is the registry's, with the entry's primary metric and the
extra metrics its `sub` names, so an entry is checked against what it claims to report.
Expects a schema-valid results dict (forgetbench.submission_schema.check_results).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .errors import UserError
from .harness import gen_key
from .metrics import mean_drop, task_delta_with_reps
from .records import ItemResult, TaskDelta, TaskRun, TaskSpec
from .submission import RESULTS_FILE, Problem
from .submission_schema import key_path

TOL = 1e-9
_EST = ("base", "tuned", "delta")


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOL, abs_tol=TOL)


def _spec(t: dict, spec: TaskSpec) -> TaskSpec:
    labels = {f"{spec.strata_key or 'stratum'}={i['stratum']}" for i in t["items"] if i["stratum"] is not None}
    extras = tuple(k for k in t["aggregate"]["sub"] if k not in labels)
    return replace(spec, primary_metric=t["primary_metric"], extra_metrics=extras)


def _run(t: dict, side: str) -> TaskRun:
    items = tuple(
        ItemResult(doc_id=i["doc_id"], doc_hash=i["doc_hash"], prompt="", response="", score=float(i[side]["score"]),
                   metrics=i[side]["metrics"], cluster=i["cluster"], stratum=i["stratum"])
        for i in t["items"]
    )
    return TaskRun(side, t["task"], t["version"], t["data_hash"], t["gen_key"], {}, items, {})


def _compare(out: list[Problem], path: str, rec: dict, d: TaskDelta, is_sub: bool) -> None:
    def bad(fld: str, got, want) -> None:
        out.append(Problem(RESULTS_FILE, f"{path}.{fld}", f"is {got!r} but recomputing from the items gives {want!r}"))

    if rec["n"] != d.n:
        bad("n", rec["n"], d.n)
    for k in _EST:
        for f in ("value", "lo", "hi"):
            got, want = rec[k][f], getattr(getattr(d, k), f)
            if not close(got, want):
                bad(f"{k}.{f}", got, want)
    for k in ("forgotten", "learned"):
        if rec[k] != getattr(d, k):
            bad(k, rec[k], getattr(d, k))
    if is_sub:
        if rec["metric"] != d.metric:
            bad("metric", rec["metric"], d.metric)
        return
    for name in sorted(set(rec["sub"]) | set(d.sub)):
        p = key_path(f"{path}.sub", name)
        if name not in d.sub:
            out.append(Problem(RESULTS_FILE, p, "cannot be recomputed: the items carry no such metric or stratum"))
        elif name not in rec["sub"]:
            out.append(Problem(RESULTS_FILE, p, "is missing (the items give this stratum/metric)"))
        else:
            _compare(out, p, rec["sub"][name], d.sub[name], True)


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


def check_tasks(res: dict, tasks: dict[str, TaskSpec]) -> list[Problem]:
    out: list[Problem] = []
    boot = res["bootstrap"]
    deltas, reps, complete = [], [], True
    for i, t in enumerate(res["tasks"]):
        p, spec = f"tasks[{i}]", tasks.get(t["task"])
        if spec is None or not _items_ok(out, t, p):
            complete = False
            continue
        try:
            with np.errstate(all="ignore"):
                d, r = task_delta_with_reps(_spec(t, spec), t["role"], _run(t, "base"), _run(t, "tuned"),
                                            n_boot=boot["n_boot"], seed=boot["seed"])
        except (UserError, ValueError, ZeroDivisionError, FloatingPointError) as e:
            out.append(Problem(RESULTS_FILE, f"{p}.items", f"cannot recompute the aggregate: {e}"))
            complete = False
            continue
        _compare(out, f"{p}.aggregate", t["aggregate"], d, False)
        deltas.append(d)
        reps.append(r)
    if not complete:
        return out  # mean_drop cannot be recomputed without every task
    with np.errstate(all="ignore"):
        md = mean_drop(deltas, reps)
    rec = res["mean_drop"]
    if (md is None) != (rec is None):
        out.append(Problem(RESULTS_FILE, "mean_drop", f"is {rec!r} but the tasks give {md!r}"))
    elif md is not None:
        for f in ("value", "lo", "hi"):
            if not close(rec[f], getattr(md, f)):
                out.append(Problem(RESULTS_FILE, f"mean_drop.{f}", f"is {rec[f]!r} but recomputing from the"
                                   f" items gives {getattr(md, f)!r}"))
    return out


_KL_NAMES = {"fwd_seq": "fwd_per_seq", "fwd_tok": "fwd_per_token", "rev_tok": "rev_per_token", "tv_tok": "tv_per_token"}


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
    from .kl import KLItems, summarize

    col = lambda k: tuple(x[k] for x in items)  # noqa: E731
    s = kl["settings"]
    try:
        with np.errstate(all="ignore"):
            est = summarize(KLItems(col("fwd"), col("rev"), col("tv"), col("n_tokens"), col("prompt_index")),
                            n_boot=s.get("n_boot", 10000), seed=s.get("boot_seed", 0))
    except (UserError, ValueError) as e:
        return out + [Problem(RESULTS_FILE, "kl.items", f"cannot recompute the KL estimates: {e}")]
    for ours, theirs in _KL_NAMES.items():
        for f in ("value", "lo", "hi"):
            got, want = kl[ours][f], getattr(est[theirs], f)
            if not close(got, want):
                out.append(Problem(RESULTS_FILE, f"kl.{ours}.{f}", f"is {got!r} but recomputing from kl.items"
                                   f" gives {want!r}"))
    return out


def check_numbers(res: dict, tasks: dict[str, TaskSpec]) -> list[Problem]:
    return check_tasks(res, tasks) + check_kl(res["kl"])
