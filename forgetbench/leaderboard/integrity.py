"""Is a schema-valid entry what the registry says it is? (forgetbench validate, "well-formed but dishonest")

Recomputing the aggregates (forgetbench.leaderboard.recompute) proves the numbers follow from the items; this
module checks the items and settings themselves:

- rows: for a task whose data hash the registry accepts, the items (doc hash, cluster, stratum in
  doc_id order) are exactly the registry's rows for that hash: regenerated for generated (lite) tasks,
  compared with the registry's pinned `data_rows` hash for hub tasks, whose rows the validator cannot
  read offline. A task whose data hash is not accepted is stale (forgetbench.leaderboard.validate); a task the
  registry pins nothing for gets a warning that its rows could not be checked;
- coverage: `pair.settings.suite` names a registered suite, every task of it is present (only the
  target may be added), and `pair.settings.tasks` lists exactly the tasks present;
- values (forgetbench.leaderboard.metric_values): every per-item metric is one the task produces and
  lies in its range (0/1 metrics are exactly 0 or 1, instruction-level fractions in [0, 1], `__n`
  counts positive integers); a task with a cluster/strata key has one on every item;
- settings: the pair's tasks ran under the pair's settings; the bootstrap is the project's (format v1:
  n_boot 10000, seed 0, ci 0.95; KL: forgetbench.stats' KL bootstrap; format v2's `intervals` are
  compared by forgetbench.leaderboard.recompute); KL is measured on the target, per-sequence values are
  non-negative and tv is at most the sequence's token count;
- text: no string anywhere holds a lone surrogate (it cannot be encoded as UTF-8 and would only fail
  later, while the site is written).
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

from forgetbench.tasks.data import docs_items, items_hash, load_docs
from forgetbench.errors import UserError
from forgetbench.records import TaskSpec
from forgetbench.leaderboard.submission import RESULTS_FILE, Problem
from forgetbench.leaderboard.checker import key_path
from forgetbench.leaderboard.metric_values import check_values

from forgetbench.stats import KL_BOOT_SEED, KL_N_BOOT, LEVEL

# What `forgetbench eval` used for every format-v1 entry (its paired percentile bootstrap); format v2
# stores `intervals`, which forgetbench.leaderboard.recompute compares with forgetbench.stats.settings().
BOOTSTRAP_V1 = {"n_boot": 10000, "seed": 0, "ci": LEVEL}


def check(res: dict, tasks: dict[str, TaskSpec]) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) for a schema-valid results dict; tasks unknown to the registry are skipped
    (forgetbench.leaderboard.validate reports them)."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    err = lambda field, msg: errors.append(Problem(RESULTS_FILE, field, msg))  # noqa: E731
    _coverage(res, tasks, err)
    _settings(res, err)
    for i, t in enumerate(res["tasks"]):
        spec = tasks.get(t["task"])
        if spec is None:
            continue
        _keys(t, i, spec, err)
        check_values(t, i, spec, err)
        _rows(t, i, spec, err, lambda f, m: warnings.append(Problem(RESULTS_FILE, f, m)),
              res["pair"]["settings"].get("seed"))
    if res["kl"] is not None:
        _kl(res, err)
    return errors, warnings


# ------------------------------------------------------------------------------------ coverage


def _coverage(res: dict, tasks: dict[str, TaskSpec], err) -> None:
    s, target = res["pair"]["settings"], res["pair"]["target"]
    present = [t["task"] for t in res["tasks"]]
    listed = s.get("tasks")
    if not (isinstance(listed, list) and all(isinstance(x, str) for x in listed)):
        err("pair.settings.tasks", "must list the evaluated tasks (as forgetbench eval records them)")
    elif Counter(listed) != Counter(present):
        gone = sorted(set(listed) - set(present))
        extra = sorted(set(present) - set(listed))
        err("pair.settings.tasks", (f"lists {', '.join(gone)}, which results.json has no results for" if gone else
                                    f"does not list {', '.join(extra)}, which results.json has results for" if extra
                                    else "repeats a task") + ": every evaluated task must be reported")
    suite = s.get("suite")
    members = {n for n, t in tasks.items() if isinstance(suite, str) and suite in t.suites}
    if suite is None:
        err("pair.settings.suite", "is null (a hand-picked --tasks list): a leaderboard entry covers a whole"
            " registered suite (forgetbench eval --suite core|lite --target TASK)")
    elif not members:
        err("pair.settings.suite", f"{str(suite)[:40]!r} is not a suite of the registry")
    else:
        missing = sorted(members - set(present))
        extra = sorted(set(present) - members - {target})
        if missing:
            err("tasks", f"lack {', '.join(missing)} of suite {suite}: every task of the declared suite must be"
                " reported (a dropped probe changes the mean drop)")
        if extra:
            err("tasks", f"include {', '.join(extra)}, which are not in suite {suite} (only the target may be added)")


# ------------------------------------------------------------------------------------ settings


# Evaluation settings recorded both for the pair and in every task's gen_settings (the cache key).
_SHARED_SETTINGS = ("backend", "dtype", "seed", "max_gen_toks")


def _settings(res: dict, err) -> None:
    pair = res["pair"]["settings"]
    for i, t in enumerate(res["tasks"]):
        for gs in ("gen_settings", "tuned_gen_settings"):
            g = t.get(gs) or {}
            # a key the tasks ran with but the pair omits would hide the pair's base identity (trust.py)
            gone = next((k for k in _SHARED_SETTINGS if k in g and k not in pair), None)
            if gone:
                err(f"pair.settings.{gone}", f"is missing but tasks[{i}].{gs}.{gone} is {g[gone]!r}: a pair records"
                    " the settings its tasks ran under")
                return
            bad = next((k for k in _SHARED_SETTINGS if k in g and k in pair and g[k] != pair[k]), None)
            if bad:
                err(f"tasks[{i}].{gs}.{bad}", f"is {g[bad]!r} but pair.settings.{bad} is {pair[bad]!r}: a pair's tasks"
                    " run under the pair's settings")
                return
    boot = res.get("bootstrap")
    if isinstance(boot, dict):
        for k, want in BOOTSTRAP_V1.items():
            if boot.get(k) != want or isinstance(boot.get(k), bool):
                err(f"bootstrap.{k}", f"is {boot.get(k)!r}; every interval of this format is computed with"
                    f" {k} = {want!r} (forgetbench eval never writes another value)")
    kl = res["kl"]
    if kl is not None:
        for k, want in (("n_boot", KL_N_BOOT), ("boot_seed", KL_BOOT_SEED)):
            if k in kl["settings"] and kl["settings"][k] != want:
                err(f"kl.settings.{k}", f"is {kl['settings'][k]!r}; forgetbench's KL intervals use {k} = {want}")


def _kl(res: dict, err) -> None:
    kl = res["kl"]
    if kl["task"] != res["pair"]["target"]:
        err("kl.task", f"is {kl['task'][:40]!r}; KL is measured on the target's prompts ({res['pair']['target']!r})")
    for j, it in enumerate(kl["items"]):
        for f in ("fwd", "rev", "tv"):
            if it[f] < 0:
                err(f"kl.items[{j}].{f}", f"is {it[f]!r}; a KL divergence or total variation is never negative")
                return
        if it["tv"] > it["n_tokens"] + 1e-9:
            err(f"kl.items[{j}].tv", f"is {it['tv']!r}, more than its {it['n_tokens']} tokens (tv is at most 1 per"
                " token)")
            return


# ------------------------------------------------------------------------------------ values


def _keys(t: dict, i: int, spec: TaskSpec, err) -> None:
    for key, what in ((spec.cluster_key, "cluster"), (spec.strata_key, "stratum")):
        if key and any(it[what] is None for it in t["items"]):
            j = next(j for j, it in enumerate(t["items"]) if it[what] is None)
            err(f"tasks[{i}].items[{j}].{what}", f"is null; task {spec.name} groups its items by {key}, so every"
                f" item carries its {what}")


# ------------------------------------------------------------------------------------ rows


def registry_rows(spec: TaskSpec, data_hash: str, seed: int | None = None) -> tuple[int, str, list | None] | None:
    """(row count, items hash, the rows' (doc hash, cluster, stratum) or None) of the registry's rows
    with this data hash: regenerated for generated tasks (a pinned `--limit` subsample, like the demo's,
    too when the entry's seed reproduces it), else the pinned `data_rows`; None if unknown."""
    generated = bool(spec.sources) and all(s.generator for s in spec.sources)
    if generated:
        got = _generated(spec)
        if got is not None and got[0] == data_hash:
            return len(got[1]), items_hash(got[1]), got[1]
    for h, n, items in spec.data_rows:
        if h == data_hash:
            sub = _generated(spec, n, seed) if generated and isinstance(seed, int) else None
            # the rows let the error name each missing or changed doc_id, not just the count
            return n, items, sub[1] if sub is not None and sub[0] == data_hash else None
    return None


@lru_cache(maxsize=64)
def _generated(spec: TaskSpec, limit: int | None = None, seed: int = 0) -> tuple[str, list] | None:
    try:
        docs = load_docs(spec, limit=limit, seed=seed)
    except UserError:
        return None
    return docs.data_hash, docs_items(docs)


def _rows(t: dict, i: int, spec: TaskSpec, err, warn, seed=None) -> None:
    if not spec.data_hashes:
        warn(f"tasks[{i}].items", f"the registry pins no rows for task {spec.name}, so its items could not be checked"
             " against them")
        return
    if t["data_hash"] not in spec.data_hashes:
        return  # stale: reported by forgetbench.leaderboard.validate
    want = registry_rows(spec, t["data_hash"], seed)
    if want is None:
        warn(f"tasks[{i}].items", f"the registry has no pinned rows for data hash {t['data_hash'][:12]}..., so the"
             f" items of {spec.name} could not be checked against them")
        return
    n, digest, rows = want
    items = sorted(t["items"], key=lambda it: it["doc_id"])
    mine = [(it["doc_hash"], it["cluster"], it["stratum"]) for it in items]
    if [it["doc_id"] for it in items] == list(range(n)) and items_hash(mine) == digest:
        return
    detail = f"{len(items)} items, the registry's rows are {n}"
    if rows is not None:
        have = {it["doc_id"]: m for it, m in zip(items, mine)}
        missing = [d for d in range(n) if d not in have]
        changed = [d for d in range(n) if d in have and have[d] != rows[d]]
        extra = sorted(d for d in have if not 0 <= d < n)
        parts = [f"doc_id {', '.join(map(str, x[:5]))}{', ...' if len(x) > 5 else ''} {what}"
                 for x, what in ((missing, "missing"), (changed, "not the registry's row"), (extra, "beyond the rows"))
                 if x]
        detail += "; " + "; ".join(parts) if parts else ""
    elif len(items) == n:
        detail = f"{n} items, but their doc hashes/clusters/strata are not the registry's rows"
    err(f"tasks[{i}].items", f"are not the registry's rows for data hash {t['data_hash'][:12]}... ({detail}): a task"
        " is reported on every row it was evaluated on")


# ------------------------------------------------------------------------------------ text


def unencodable(obj, file: str, root: str = "") -> list[Problem]:
    """Strings (keys included) that cannot be encoded as UTF-8 (lone surrogates), with their fields."""
    out: list[Problem] = []
    stack = [(root, obj)]
    while stack and len(out) < 5:
        path, x = stack.pop()
        if isinstance(x, str):
            if not x.isascii():
                try:
                    x.encode("utf-8")
                except UnicodeEncodeError as e:
                    out.append(Problem(file, path, f"holds a lone surrogate (U+{ord(x[e.start]):04X} at character"
                                       f" {e.start}), which is not text and cannot be written as UTF-8"))
        elif isinstance(x, dict):
            for k, v in x.items():
                kp = key_path(path, k.encode("utf-8", "backslashreplace").decode() if isinstance(k, str) else str(k))
                stack.append((kp, v))
                if isinstance(k, str):
                    stack.append((f"{kp} (the key)", k))
        elif isinstance(x, list):
            stack.extend((f"{path}[{j}]", v) for j, v in enumerate(x))
    return out
