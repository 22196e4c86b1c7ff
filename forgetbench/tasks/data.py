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

from forgetbench.errors import UserError
from forgetbench.records import DataSource, Docs, TaskSpec


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


def load_ref(ref: str):
    """The object a `module:name` reference names (generators, combiners, expert writers, judges)."""
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


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a jsonl file; an unreadable file, invalid UTF-8 or JSON, or a line that is not a JSON
    object is a UserError naming the file and line."""
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
                if not isinstance(row, dict):
                    raise UserError(f"{path}:{lineno}: a row must be a JSON object, got {_kind(row)}")
                rows.append(row)
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not valid UTF-8 (line {len(rows) + 1} or near it, byte {e.start} of its chunk)") from e
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror}") from e
    return rows


def _kind(v) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _show(v) -> str:
    text = json.dumps(v, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _field_problem(row: dict, name: str, kind: str) -> str | None:
    """Why row[name] does not have the registry's type `kind` (TaskSpec.fields), or None."""
    nullable = kind.endswith("?")
    kind = kind.rstrip("?")
    if name not in row:
        return "is missing"
    v = row[name]
    if v is None:
        return None if nullable else f"is null, expected {kind}"
    if kind.startswith("index(") and kind.endswith(")"):
        of = kind[6:-1]
        ok = (type(v) is int) or (isinstance(v, str) and v.isdigit() and v.isascii())
        n = len(row.get(of)) if isinstance(row.get(of), list) else 0
        if not ok or not 0 <= int(v) < n:
            return f"is {_show(v)}, expected an index into {of} (0 to {n - 1})"
        return None
    want = {"str": str, "int": int, "number": (int, float), "bool": bool, "dict": dict}.get(kind)
    if want is not None:
        good = isinstance(v, want) and not (isinstance(v, bool) and kind in ("int", "number"))
        return None if good else f"is {_kind(v)} ({_show(v)}), expected {kind}"
    if kind.startswith("list[") and kind.endswith("]"):
        inner = kind[5:-1]
        if not isinstance(v, list) or not v:
            return f"is {_kind(v)}, expected a non-empty list of {inner}"
        bad = next((x for x in v if _field_problem({"x": x}, "x", inner)), None) if inner != "any" else None
        return None if bad is None else f"holds {_kind(bad)} ({_show(bad)}), expected a list of {inner}"
    raise UserError(f"unknown field type {kind!r} in the registry")  # the registry checks this on load


def check_rows(spec: TaskSpec, rows: list, where: str) -> None:
    """Every row an object with the fields the task's prompts and scorers read (metadata.forgetbench.
    fields), and the cluster/strata keys: a malformed row is a UserError naming task, row and field,
    raised while the data is loaded, before any model is."""
    fields = dict(spec.fields)
    for key in filter(None, (spec.cluster_key, spec.strata_key)):
        fields.setdefault(key, "str")
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise UserError(f"task {spec.name}: row {i} of {where}: a row must be an object, got {_kind(row)}")
        for name, kind in fields.items():
            why = _field_problem(row, name, kind)
            if why:
                raise UserError(f"task {spec.name}: row {i} of {where}: field {name!r} {why}")


def _read_hub(src: DataSource) -> list[dict]:
    import datasets  # heavy; only when the hub is really used
    from huggingface_hub.utils import logging as hub_logging

    from forgetbench.errors import one_line

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
        return list(load_ref(src.generator)(n=src.n, seed=src.seed))
    if src.path:  # a task's own rows (a user task), whatever --data-dir says
        if not Path(src.path).is_file():
            raise UserError(f"no rows file {src.path} (a `path:` source of the task)")
        return read_jsonl(Path(src.path))
    if data_dir is not None:
        path = data_dir_file(src, data_dir)
        if not path.is_file():
            raise UserError(f"--data-dir has no {path} (expected for {src.describe()})")
        return read_jsonl(path)
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
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    per_source = {}
    for i, s in enumerate(spec.sources):
        rows = read_source(s, data_dir)
        bad = next((j for j, r in enumerate(rows, 1) if not isinstance(r, dict)), None)
        if bad is not None:
            raise UserError(f"task {spec.name}: row {bad} of {s.describe()}: a row must be an object, got"
                            f" {_kind(rows[bad - 1])}")
        per_source[s.name or str(i)] = rows
    if spec.combine:
        rows = list(load_ref(spec.combine)(per_source))
        where = "the combined rows"
    elif len(per_source) == 1:
        rows = next(iter(per_source.values()))
        where = spec.sources[0].describe() + (f" (--data-dir {data_dir})" if data_dir and not spec.sources[0].generator
                                              else "")
    else:
        raise UserError(f"task {spec.name}: several sources need a `combine` function")
    if not rows:
        raise UserError(f"task {spec.name}: no rows")
    check_rows(spec, rows, where)
    group_key = spec.cluster_key or spec.strata_key
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


def load_all(specs, *, data_dir: Path | None = None, limit: int | None = None, seed: int = 1234) -> dict[str, Docs]:
    """load_docs for every task, all of them checked before anything else happens: the problems of
    every task are reported together, so a bad file is not found one model load at a time."""
    docs, problems = {}, []
    for s in specs:
        try:
            docs[s.name] = load_docs(s, data_dir=data_dir, limit=limit, seed=seed)
        except UserError as e:
            problems.append(str(e))
    if problems:
        raise UserError("; ".join(problems))
    return docs


def items_hash(items) -> str:
    """sha256 of an evaluation's rows as the results show them: (doc hash, cluster, stratum) per row in
    row (doc_id) order. The registry pins it per accepted data hash (`data_rows`), so validate can
    check offline that an entry reports exactly the registry's rows, each in its cluster/stratum."""
    h = hashlib.sha256()
    for doc, cluster, stratum in items:
        h.update(json.dumps([doc, cluster, stratum], ensure_ascii=False, separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()


def docs_items(docs: Docs) -> list[tuple[str, str | None, str | None]]:
    """(doc hash, cluster, stratum) of each row, as forgetbench.eval.lmeval records them in every item."""
    n = len(docs.rows)
    return list(zip([doc_hash(r) for r in docs.rows], docs.clusters or [None] * n, docs.strata or [None] * n))


def gen_key(gen_settings: dict) -> str:
    return hashlib.sha256(canonical(gen_settings).encode()).hexdigest()[:16]
