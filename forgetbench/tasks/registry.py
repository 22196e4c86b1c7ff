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
        data_rows: {<sha256>: {n: 1319, items: <sha256>}}   # hub rows, for validate (forgetbench.tasks.data.items_hash)
        fields: {question: str, answer: str}   # row fields the prompts/scorers read, checked on load
        combine: forgetbench.tasks.lite.safety:combine   # optional, joins several sources
        sources:
          - {hub: openai/gsm8k, config: main, split: test, revision: null}
          - {generator: "forgetbench.tasks.lite.countdown:generate", n: 200, seed: 0}
        # training (forgetbench train), both optional:
        train_sources:                  # rows to train on, disjoint from `sources` (same keys as sources)
          - {hub: Jiayi-Pan/Countdown-Tasks-3to4, split: train, hub_split: "train[:327680]"}
        expert: forgetbench.tasks.lite.countdown:expert_response   # row -> a correct response (sft)

Without `train_sources`, a task whose one source is a generator trains on the same generator with
another seed; any other task needs `forgetbench train --data FILE`. Without `expert`, `--method sft`
needs `--data` pairs.

Parsing uses a YAML loader that keeps lm-eval's `!function` tags as strings, so listing tasks does
not import lm-eval.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import yaml

from forgetbench.errors import UserError
from forgetbench.records import DataSource, TaskSpec
from forgetbench.paths import shipped

ROLES = ("target", "probe")


TASKS_DIRS_ENV = "FORGETBENCH_TASKS_DIRS"  # extra task folders beside the registry, os.pathsep-separated


def tasks_dir() -> Path:
    """The built-in registry folder: $FORGETBENCH_TASKS (replaces it), the checkout's `tasks/`, or the
    wheel's copy."""
    env = os.environ.get("FORGETBENCH_TASKS")
    if env:
        return Path(env)
    found = shipped("tasks")
    if found is not None:
        return found
    raise UserError("cannot find the task registry (tasks/); set FORGETBENCH_TASKS")


def extra_dirs() -> tuple[Path, ...]:
    """Folders of the user's own tasks, read beside the registry: $FORGETBENCH_TASKS_DIRS (the CLI's
    --tasks-dir adds to it, so worker processes see the same registry)."""
    env = os.environ.get(TASKS_DIRS_ENV, "")
    return tuple(dict.fromkeys(Path(p).resolve() for p in env.split(os.pathsep) if p.strip()))


def use_tasks_dirs(dirs) -> None:
    """Add task folders beside the registry for this process and its children (--tasks-dir)."""
    for d in dirs or ():
        if not Path(d).is_dir():
            raise UserError(f"--tasks-dir {d}: not a directory")
    paths = [str(p) for p in extra_dirs()] + [str(Path(d).resolve()) for d in dirs or ()]
    os.environ[TASKS_DIRS_ENV] = os.pathsep.join(dict.fromkeys(paths))


def tasks_dirs() -> tuple[Path, ...]:
    """Every folder the registry reads: the built-in one first, then the user's."""
    return (tasks_dir(), *extra_dirs())


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
    sources = _sources(path, meta, "sources")
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
        data_hashes=_hashes(path, meta),
        unsafe_code=bool(cfg.get("unsafe_code", False)),
        data_rows=_data_rows(path, meta),
        fields=_fields(path, meta),
        train_sources=_sources(path, meta, "train_sources"),
        expert=_ref(path, meta, "expert"),
    )


def _sources(path: Path, meta: dict, key: str) -> tuple[DataSource, ...]:
    listed = meta.get(key) or []
    if not isinstance(listed, list) or not all(isinstance(s, dict) for s in listed):
        raise UserError(f"{path}: metadata.forgetbench.{key} must be a list of sources ({{hub: ...}}, {{path: ...}},"
                        " {generator: ...})")
    try:
        return tuple(_source(path, DataSource(**s)) for s in listed)
    except TypeError as e:
        raise UserError(f"{path}: metadata.forgetbench.{key}: {e}") from e


_REF = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def _ref(path: Path, meta: dict, key: str) -> str | None:
    """A "module:function" field; imported only when used (listing tasks imports no task code)."""
    ref = meta.get(key)
    if ref is not None and not (isinstance(ref, str) and _REF.fullmatch(ref)):
        raise UserError(f"{path}: metadata.forgetbench.{key} must be \"module:function\", got {ref!r}")
    return ref


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _hashes(path: Path, meta: dict) -> tuple[str, ...]:
    """data_hashes: the sha256 values `forgetbench tasks hash NAME` prints; anything else (a pasted
    message, a truncated hash) is refused rather than silently never matching."""
    hashes = meta.get("data_hashes") or []
    if not isinstance(hashes, list):
        hashes = [hashes]
    bad = [h for h in hashes if not (isinstance(h, str) and _SHA256.fullmatch(h))]
    if bad:
        raise UserError(f"{path}: metadata.forgetbench.data_hashes must list sha256 hex digests (as printed by"
                        f" `forgetbench tasks hash`), got {bad[0]!r}")
    return tuple(hashes)


_FIELD_TYPE = re.compile(r"(str|int|number|bool|dict|list\[(str|int|number|dict|any)\]|index\([a-z_]+\))\??")


def _fields(path: Path, meta: dict) -> tuple[tuple[str, str], ...]:
    f = meta.get("fields") or {}
    if not isinstance(f, dict) or not all(isinstance(k, str) and isinstance(v, str) and _FIELD_TYPE.fullmatch(v)
                                          for k, v in f.items()):
        raise UserError(f"{path}: metadata.forgetbench.fields must map row fields to types ({_FIELD_TYPE.pattern})")
    return tuple(f.items())


def _data_rows(path: Path, meta: dict) -> tuple[tuple[str, int, str], ...]:
    rows = meta.get("data_rows") or {}
    out = []
    for h, v in rows.items() if isinstance(rows, dict) else [(None, None)]:
        if not (isinstance(v, dict) and isinstance(v.get("n"), int) and isinstance(v.get("items"), str)):
            raise UserError(f"{path}: metadata.forgetbench.data_rows must map data hashes to {{n, items}}")
        if h not in (meta.get("data_hashes") or ()):
            raise UserError(f"{path}: metadata.forgetbench.data_rows pins {h!r}, which is not in data_hashes")
        out.append((h, v["n"], v["items"]))
    return tuple(out)


def _source(path: Path, src: DataSource) -> DataSource:
    """A `path:` source is relative to its YAML's folder; stored absolute so any cwd reads it."""
    if src.path is None:
        return src
    return replace(src, path=str((path.parent / src.path).resolve()))


@lru_cache(maxsize=8)
def _load(root: str) -> dict[str, TaskSpec]:
    specs: dict[str, TaskSpec] = {}
    for path in sorted([*Path(root).glob("*/*.yaml"), *Path(root).glob("*.yaml")]):
        cfg = read_yaml(path)
        if not isinstance(cfg, dict) or "forgetbench" not in (cfg.get("metadata") or {}):
            continue  # an lm-eval helper file (e.g. an `include` base), not a registered task
        spec = _spec_from(path, cfg)
        if spec.name in specs:
            raise UserError(f"task {spec.name!r} is defined twice: {specs[spec.name].yaml_path}, {path}")
        specs[spec.name] = spec
    return specs


def all_tasks() -> dict[str, TaskSpec]:
    """The built-in registry plus the tasks of every extra folder (marked custom); a name defined twice
    is refused, naming both files."""
    tasks = dict(_load(str(tasks_dir())))
    for d in extra_dirs():
        if not d.is_dir():
            raise UserError(f"task folder {d} (${TASKS_DIRS_ENV} or --tasks-dir) is not a directory")
        if d == tasks_dir().resolve():
            continue
        for name, spec in _load(str(d)).items():
            if name in tasks:
                other = tasks[name]
                kind = "a custom task" if other.custom else "the built-in task"
                raise UserError(f"task {name!r} in {spec.yaml_path} clashes with {kind} of that name in "
                                f"{other.yaml_path}; rename yours (its `task:` field and folder)")
            tasks[name] = replace(spec, custom=True)
    return tasks


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


def lm_eval_config(spec: TaskSpec) -> dict:
    """The task's lm-eval YAML with its `include` merged, read without lm-eval (for cache keys and checks)."""
    cfg = read_yaml(Path(spec.yaml_path))
    if "include" in cfg:  # one level is all the registry uses; lm-eval merges the same way
        base = read_yaml(Path(spec.yaml_path).parent / cfg["include"])
        cfg = {**base, **cfg}
    return cfg
