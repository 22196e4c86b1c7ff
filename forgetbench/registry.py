"""The task registry: every `tasks/*/*.yaml` that carries a `metadata.forgetbench` block.

A task file is a plain lm-eval task config (so `lm_eval --include_path tasks --tasks NAME` runs it
without forgetbench's CLI); forgetbench reads its own fields from `metadata.forgetbench`:

    metadata:
      version: 1.0
      forgetbench:
        role: probe                     # target | probe
        suites: [core]                  # core | lite
        primary_metric: exact_match,flexible-extract
        higher_is_better: true
        chance: 0.0
        cluster_key: subject            # optional doc field; CIs resample whole clusters
        strata_key: kind                # optional doc field; primary = mean of per-stratum means
        extra_metrics: [prompt_level_loose_acc]
        data_hashes: [<sha256>]         # accepted hashes of the full evaluation rows (leaderboard)
        combine: forgetbench.lite.safety:combine   # optional, joins several sources
        sources:
          - {hub: openai/gsm8k, config: main, split: test, revision: null}
          - {generator: "forgetbench.lite.countdown:generate", n: 200, seed: 0}

Parsing uses a YAML loader that keeps lm-eval's `!function` tags as strings, so listing tasks does
not import lm-eval.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import yaml

from .errors import UserError
from .records import DataSource, TaskSpec

ROLES = ("target", "probe")


def tasks_dir() -> Path:
    """The registry folder: $FORGETBENCH_TASKS, the checkout's `tasks/`, or the wheel's copy."""
    env = os.environ.get("FORGETBENCH_TASKS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "tasks", here / "_tasks"):
        if cand.is_dir():
            return cand
    raise UserError("cannot find the task registry (tasks/); set FORGETBENCH_TASKS")


class _Loader(yaml.SafeLoader):
    pass


def _tagged(loader, node):
    return f"!function {loader.construct_scalar(node)}"


_Loader.add_constructor("!function", _tagged)


def read_yaml(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_Loader) or {}


def _spec_from(path: Path, cfg: dict) -> TaskSpec:
    meta = (cfg.get("metadata") or {}).get("forgetbench") or {}
    name = cfg.get("task")
    role = meta.get("role")
    if not name or role not in ROLES:
        raise UserError(f"{path}: metadata.forgetbench needs a task name and role in {ROLES}")
    sources = tuple(DataSource(**s) for s in meta.get("sources") or ())
    if not sources:
        raise UserError(f"{path}: metadata.forgetbench.sources is empty")
    return TaskSpec(
        name=name,
        role=role,
        suites=tuple(meta.get("suites") or ("core",)),
        version=str(cfg["metadata"].get("version", "0")),
        primary_metric=meta["primary_metric"],
        higher_is_better=bool(meta.get("higher_is_better", True)),
        chance=float(meta.get("chance", 0.0)),
        cluster_key=meta.get("cluster_key"),
        strata_key=meta.get("strata_key"),
        sources=sources,
        yaml_path=str(path),
        combine=meta.get("combine"),
        description=meta.get("description", ""),
        extra_metrics=tuple(meta.get("extra_metrics") or ()),
        data_hashes=tuple(meta.get("data_hashes") or ()),
    )


@lru_cache(maxsize=4)
def _load(root: str) -> dict[str, TaskSpec]:
    specs: dict[str, TaskSpec] = {}
    for path in sorted(Path(root).glob("*/*.yaml")):
        cfg = read_yaml(path)
        if not isinstance(cfg, dict) or "forgetbench" not in (cfg.get("metadata") or {}):
            continue  # an lm-eval helper file (e.g. an `include` base), not a registered task
        spec = _spec_from(path, cfg)
        if spec.name in specs:
            raise UserError(f"task {spec.name!r} is defined twice: {specs[spec.name].yaml_path}, {path}")
        specs[spec.name] = spec
    return specs


def all_tasks() -> dict[str, TaskSpec]:
    return dict(_load(str(tasks_dir())))


def get(name: str) -> TaskSpec:
    tasks = all_tasks()
    if name not in tasks:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(sorted(tasks))}")
    return tasks[name]


def suite(name: str) -> list[TaskSpec]:
    chosen = [t for t in all_tasks().values() if name in t.suites]
    if not chosen:
        known = sorted({s for t in all_tasks().values() for s in t.suites})
        raise UserError(f"unknown suite {name!r}; known suites: {', '.join(known)}")
    return chosen
