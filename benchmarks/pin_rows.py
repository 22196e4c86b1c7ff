"""Maintainers: pin the rows of hub tasks in the registry, so `forgetbench validate` can check offline
that an entry reports exactly the registry's rows (metadata.forgetbench.data_rows).

For each hub task whose rows (from --data-dir, or the hub) hash to one of its `data_hashes`, prints
`data_rows: {<data hash>: {n: <rows>, items: <forgetbench.tasks.data.items_hash>}}` and, with --write,
puts that line into the task's YAML (replacing an existing data_rows line). Generated (lite) tasks
need no pin: the validator regenerates their rows.

    python benchmarks/pin_rows.py --data-dir ../shared/data/hf [--write] [TASK ...]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing


def main(argv=None) -> int:
    from forgetbench.tasks import data, registry
    from forgetbench.errors import UserError

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tasks", nargs="*")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--write", action="store_true", help="update the task YAML files")
    args = ap.parse_args(argv)
    specs = [registry.get(n) for n in args.tasks] or sorted(registry.all_tasks().values(), key=lambda s: s.name)
    for spec in specs:
        if all(s.generator for s in spec.sources):
            continue
        try:
            docs = data.load_docs(spec, data_dir=args.data_dir)
        except UserError as e:
            print(f"{spec.name}: skipped ({e})")
            continue
        if docs.data_hash not in spec.data_hashes:
            print(f"{spec.name}: skipped (rows hash to {docs.data_hash[:12]}..., not a registered data hash)")
            continue
        line = (f"data_rows: {{{docs.data_hash}: {{n: {len(docs.rows)}, items: "
                f"{data.items_hash(data.docs_items(docs))}}}}}")
        print(f"{spec.name}: {line}")
        if args.write:
            path = Path(spec.yaml_path)
            text = path.read_text(encoding="utf-8")
            if re.search(r"^\s+data_rows:.*$", text, re.M):
                text = re.sub(r"^(\s+)data_rows:.*$", lambda m: m.group(1) + line, text, count=1, flags=re.M)
            else:
                text = re.sub(r"^(\s+)(data_hashes:.*)$", lambda m: f"{m.group(1)}{m.group(2)}\n{m.group(1)}{line}",
                              text, count=1, flags=re.M)
            path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
