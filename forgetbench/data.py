"""Task rows: read from the hub, a local `--data-dir`, or a seeded generator; subsample; hash.

forgetbench, not lm-eval, decides which rows a task is evaluated on, so the rows can be hashed (the
data hash is part of every stored result's identity) and `--limit` can take a seeded, stratified
subsample instead of lm-eval's "first N rows".
"""

from __future__ import annotations

import hashlib
import importlib
import json
import random
from collections import defaultdict
from pathlib import Path

from .errors import UserError
from .records import DataSource, Docs, TaskSpec


def _drop_nulls(obj):
    """`datasets` fills every struct field a column has anywhere (None where absent), a jsonl copy
    omits them; hashing both the same way needs absent == null."""
    if isinstance(obj, dict):
        return {k: _drop_nulls(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_drop_nulls(v) for v in obj]
    return obj


def canonical(obj) -> str:
    return json.dumps(_drop_nulls(obj), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def doc_hash(row: dict) -> str:
    return hashlib.sha256(canonical(row).encode()).hexdigest()[:32]


def rows_hash(rows) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(canonical(row).encode())
        h.update(b"\n")
    return h.hexdigest()


def _import(ref: str):
    module, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise UserError(f"cannot import {ref!r}: {e}") from e


def data_dir_file(src: DataSource, data_dir: Path) -> Path:
    """`DIR/<org>__<name>[/<config>]/<split>.jsonl`, the layout of ../shared/data/hf."""
    folder = Path(data_dir) / src.hub.replace("/", "__")
    if src.config:
        folder = folder / src.config
    return folder / f"{src.split}.jsonl"


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
    return rows


def _read_hub(src: DataSource) -> list[dict]:
    import datasets  # heavy; only when the hub is really used
    from huggingface_hub.utils import logging as hub_logging

    from .errors import one_line

    # an unreachable hub: huggingface_hub logs a warning per retry; the UserError below says it once
    level = hub_logging.get_verbosity()
    hub_logging.set_verbosity_error()
    try:
        ds = datasets.load_dataset(
            src.hub, src.config, split=src.hub_split or src.split, revision=src.revision
        )
    except Exception as e:  # offline, gated, renamed: all end the same way for the user
        raise UserError(
            f"cannot load {src.describe()} from the Hugging Face hub ({type(e).__name__}: {one_line(e)}); "
            "pass --data-dir DIR with DIR/<org>__<name>[/<config>]/<split>.jsonl"
        ) from e
    finally:
        hub_logging.set_verbosity(level)
    return [dict(r) for r in ds]


def read_source(src: DataSource, data_dir: Path | None) -> list[dict]:
    if src.generator:
        return list(_import(src.generator)(n=src.n, seed=src.seed))
    if src.path:  # a task's own rows (a user task), whatever --data-dir says
        if not Path(src.path).is_file():
            raise UserError(f"no rows file {src.path} (a `path:` source of the task)")
        return _read_jsonl(Path(src.path))
    if data_dir is not None:
        path = data_dir_file(src, data_dir)
        if not path.is_file():
            raise UserError(f"--data-dir has no {path} (expected for {src.describe()})")
        return _read_jsonl(path)
    return _read_hub(src)


def stratified_sample(keys: list[str], limit: int, seed: int) -> list[int]:
    """Indices of a seeded subsample of `limit` rows, allocated to groups in proportion to their size
    (largest remainder), so a 200-row MMLU sample still spans the subjects. Original order is kept."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        groups[k].append(i)
    n = len(keys)
    quota = {k: limit * len(v) / n for k, v in groups.items()}
    alloc = {k: int(q) for k, q in quota.items()}
    # Sorting by key first makes ties in the remainder deterministic.
    by_rest = sorted(sorted(groups), key=lambda k: quota[k] - alloc[k], reverse=True)
    for k in by_rest[: limit - sum(alloc.values())]:
        alloc[k] += 1
    rng = random.Random(seed)
    chosen: list[int] = []
    for k in sorted(groups):
        chosen += rng.sample(groups[k], alloc[k])
    return sorted(chosen)


def load_docs(spec: TaskSpec, *, data_dir: Path | None = None, limit: int | None = None, seed: int = 1234) -> Docs:
    per_source = {(s.name or str(i)): read_source(s, data_dir) for i, s in enumerate(spec.sources)}
    if spec.combine:
        rows = list(_import(spec.combine)(per_source))
    elif len(per_source) == 1:
        rows = next(iter(per_source.values()))
    else:
        raise UserError(f"task {spec.name}: several sources need a `combine` function")
    if not rows:
        raise UserError(f"task {spec.name}: no rows")
    group_key = spec.cluster_key or spec.strata_key
    for key in filter(None, (spec.cluster_key, spec.strata_key)):
        if key not in rows[0]:
            raise UserError(f"task {spec.name}: rows have no field {key!r} (cluster/strata key)")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    if limit is not None and limit < len(rows):
        keys = [str(r[group_key]) for r in rows] if group_key else [""] * len(rows)
        rows = [rows[i] for i in stratified_sample(keys, limit, seed)]
    return Docs(
        task=spec.name,
        rows=tuple(rows),
        data_hash=rows_hash(rows),
        sources=tuple(s.describe() for s in spec.sources),
        clusters=tuple(str(r[spec.cluster_key]) for r in rows) if spec.cluster_key else None,
        strata=tuple(str(r[spec.strata_key]) for r in rows) if spec.strata_key else None,
    )
