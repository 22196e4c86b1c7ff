"""Per-item metric values of a results.json task against what the task produces (forgetbench.leaderboard.integrity's
"values" check): every metric one the task's lm-eval config lists, 0/1 metrics exactly 0 or 1,
instruction-level fractions in [0, 1], `__n` counts whole numbers >= 1.

`values_clean` answers "nothing to report" a metric at a time over all items (C-level passes); only
then does `check_values` skip its per-item loop, which finds and words the first problem of each metric.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import chain
from operator import itemgetter

from forgetbench.errors import UserError
from forgetbench.leaderboard.checker import key_path
from forgetbench.records import TaskSpec

# Per-item metrics that are fractions (ifeval's instruction level: the share of a prompt's
# instructions followed); every other metric of the registry is 0/1 per item.
FRACTION_METRICS = frozenset({"inst_level_strict_acc", "inst_level_loose_acc"})
MAX_COUNT = 10_000  # `<metric>__n`: instructions per prompt
_BINARY = frozenset((0, 1))  # a right/wrong metric's values (0.0 == 0, 1.0 == 1)


@lru_cache(maxsize=64)
def _produced(spec: TaskSpec) -> frozenset[str] | None:
    """Names of the per-item metrics the task's lm-eval config produces (None: config unreadable)."""
    from forgetbench.tasks.registry import lm_eval_config

    try:
        cfg = lm_eval_config(spec)
    except (OSError, ValueError, UserError):
        return None
    return frozenset(m["metric"] for m in cfg.get("metric_list") or () if isinstance(m, dict) and "metric" in m)


def _range_problem(name: str, v) -> str | None:
    if name.endswith("__n"):
        return None if v == int(v) and 1 <= v <= MAX_COUNT else f"is {v!r}; a count is a whole number >= 1"
    if name.split(",")[0] in FRACTION_METRICS:
        return None if 0 <= v <= 1 else f"is {v!r}; {name.split(',')[0]} is a fraction in [0, 1]"
    return None if v in (0, 1) else f"is {v!r}; {name.split(',')[0]} is 0 or 1 for each item (right or wrong)"


def values_clean(t: dict, spec: TaskSpec) -> bool:
    """True only when check_values would report nothing: a metric (and the score) at a time over all
    items, in C-level passes (check_values' per-item loop finds the first problem and words it)."""
    sides = [*map(itemgetter("base"), t["items"]), *map(itemgetter("tuned"), t["items"])]
    if not set(map(itemgetter("score"), sides)) <= _BINARY:
        return False  # fractions or counts as scores: the loop decides
    metrics = list(map(itemgetter("metrics"), sides))
    produced = _produced(spec)
    for k in set(chain.from_iterable(metrics)):
        name = k.split(",")[0]
        if produced is not None and name not in produced and not k.endswith("__n"):
            return False
        try:
            vals = list(map(itemgetter(k), metrics))
        except KeyError:  # some items lack it
            vals = [m[k] for m in metrics if k in m]
        if k.endswith("__n"):
            if not (min(vals) >= 1 and max(vals) <= MAX_COUNT and all(v == int(v) for v in vals)):
                return False
        elif name in FRACTION_METRICS:
            if not (min(vals) >= 0 and max(vals) <= 1):
                return False
        elif not set(vals) <= _BINARY:
            return False
    return True


def check_values(t: dict, i: int, spec: TaskSpec, err) -> None:
    if values_clean(t, spec):
        return
    produced = _produced(spec)
    seen: dict[str, tuple] = {}  # metric key -> first (item, side, value) with a problem, else None
    for j, it in enumerate(t["items"]):
        for side in ("base", "tuned"):
            s = it[side]
            for k, v in s["metrics"].items():
                if k not in seen:
                    name = k.split(",")[0]
                    if produced is not None and name not in produced and not k.endswith("__n"):
                        seen[k] = (j, side, None)
                        continue
                    seen[k] = None
                if seen[k] is None and _range_problem(k, v):
                    seen[k] = (j, side, v)
            if s["score"] not in (0, 1) and _range_problem(t["primary_metric"], s["score"]):
                err(f"tasks[{i}].items[{j}].{side}.score", _range_problem(t["primary_metric"], s["score"]))
                return
    for k, bad in seen.items():
        if bad is None:
            continue
        j, side, v = bad
        field = key_path(f"tasks[{i}].items[{j}].{side}.metrics", k)
        if v is None:
            err(field, f"is not a metric task {spec.name} produces ({', '.join(sorted(produced or ()))})")
        else:
            err(field, _range_problem(k, v))
