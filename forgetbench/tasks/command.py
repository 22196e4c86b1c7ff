"""`forgetbench tasks` (list the registry and the user's task folders) and `forgetbench tasks hash NAME`
(the sha256 of a task's full rows: the value to pin in its `data_hashes`; with `--limit N [--seed S]`,
of the seeded subsample `eval --limit N --seed S` evaluates, with the `data_rows` pin that lets validate
check an entry's items against it offline, as the demo's subsamples are pinned)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from forgetbench.argtypes import COUNT, SEED
from forgetbench.errors import UserError
from forgetbench.records import EvalSettings


def add_arguments(p) -> list:
    """The `tasks` parser's options and its `hash` subcommand; returns both parsers."""
    p.add_argument("--json", action="store_true")
    sub = p.add_subparsers(dest="tasks_command")
    h = sub.add_parser("hash", help="sha256 of a task's full rows, to pin in metadata.forgetbench.data_hashes")
    h.add_argument("name", help="task name")
    h.add_argument("--data-dir", type=Path, help="local data: DIR/<org>__<name>[/<config>]/<split>.jsonl")
    h.add_argument("--limit", type=COUNT, help="the seeded, stratified subsample of N rows eval --limit N uses")
    h.add_argument("--seed", type=SEED, default=EvalSettings().seed, help="its seed (eval's --seed; %(default)s)")
    h.add_argument("--json", action="store_true")
    return [p, h]


def _origin(t) -> str:
    return "custom" if t.custom else "built-in"


def _pinned(t) -> str:
    return "yes" if t.data_hashes else "no"


def list_tasks(as_json: bool) -> int:
    from forgetbench.tasks import registry

    rows = sorted(registry.all_tasks().values(), key=lambda t: (t.custom, t.suites, t.role != "target", t.name))
    if as_json:
        print(json.dumps([{
            "name": t.name, "role": t.role, "suites": list(t.suites), "version": t.version,
            "primary_metric": t.primary_metric, "chance": t.chance, "cluster_key": t.cluster_key,
            "strata_key": t.strata_key, "sources": [s.describe() for s in t.sources], "origin": _origin(t),
            "yaml": t.yaml_path, "data_hashes": list(t.data_hashes), "unsafe_code": t.unsafe_code,
        } for t in rows], indent=2))
        return 0
    head = ["task", "role", "suites", "version", "primary metric", "chance", "pinned", "origin", "source"]
    table = [[t.name, t.role, ",".join(t.suites), t.version, t.primary_metric, f"{t.chance:.2f}", _pinned(t),
              _origin(t), "; ".join(s.describe() for s in t.sources)] for t in rows]
    widths = [max(len(r[i]) for r in [head, *table]) for i in range(len(head) - 1)]
    for r in [head, *table]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    extra = registry.extra_dirs()
    if extra:
        print(f"\ncustom task folders: {', '.join(map(str, extra))}")
    if any(t.unsafe_code for t in rows):
        print("humaneval* run model-generated code: eval needs --confirm-run-unsafe-code (sandboxed)")
    return 0


def hash_task(name: str, data_dir: Path | None, as_json: bool, limit: int | None = None, seed: int = 1234) -> int:
    from forgetbench.tasks import data, registry

    if data_dir is not None and not Path(data_dir).is_dir():
        raise UserError(f"--data-dir {data_dir} is not a directory")
    spec = registry.get(name)
    docs = data.load_docs(spec, data_dir=data_dir, limit=limit, seed=seed)
    items = data.items_hash(data.docs_items(docs))
    pinned = docs.data_hash in spec.data_hashes
    subset = limit is not None and limit < sum(1 for _ in data.load_docs(spec, data_dir=data_dir).rows)
    if as_json:
        print(json.dumps({"task": name, "data_hash": docs.data_hash, "n_rows": len(docs.rows), "items": items,
                          "limit": limit if subset else None, "seed": seed if subset else None,
                          "sources": list(docs.sources), "pinned": pinned, "yaml": spec.yaml_path}))
        return 0
    print(docs.data_hash)
    what = f"{len(docs.rows)} rows" + (f" (--limit {limit} --seed {seed})" if subset else "")
    if pinned:
        state = "already pinned"
    elif subset:  # validate cannot regenerate a subsample from the task alone: it checks the pinned items hash
        state = (f"pin it: add it to data_hashes in {spec.yaml_path} and to data_rows as "
                 f"{docs.data_hash}: {{n: {len(docs.rows)}, items: {items}}}")
    else:
        state = f"pin it: add it to data_hashes in {spec.yaml_path}"
    print(f"{name}: {what} from {'; '.join(docs.sources)}; {state}", file=sys.stderr)
    return 0


def main(args) -> int:
    if getattr(args, "tasks_command", None) == "hash":
        return hash_task(args.name, args.data_dir, args.json, args.limit, args.seed)
    return list_tasks(args.json)
