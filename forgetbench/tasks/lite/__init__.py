"""The `lite` suite: small tasks whose rows the project generates itself from a seed.

Each module has `generate(n, seed) -> list[dict]` (pure Python, deterministic for a seed, no network)
producing rows in its task's own schema, so the suite runs anywhere — on a laptop CPU, offline, in CI —
and a run is reproducible from `(generator, n, seed)` alone. Generators that define a target also have
`expert_response(row)`: a short correct answer to fine-tune on in demos.

`standalone_dataset` is the `custom_dataset` hook that lets `lm_eval --include_path tasks --tasks X`
run a task without forgetbench's CLI: it rebuilds the rows from the task's own
`metadata.forgetbench.sources` (+ `combine`), so the YAML stays the single place that says where a
task's data comes from. It also serves the hub tasks (countdown, safety) whose hub layout needs
slicing or joining before lm-eval can use it.
"""

from __future__ import annotations

import os
from pathlib import Path

# Optional for standalone lm_eval runs: read hub sources from a local copy laid out like --data-dir.
DATA_DIR_ENV = "FORGETBENCH_DATA_DIR"


def rows_from_metadata(metadata: dict) -> list[dict]:
    """The rows a task's `metadata.forgetbench` block describes (sources, then combine)."""
    from forgetbench.tasks.data import load_ref, read_source  # the same readers forgetbench's CLI uses
    from forgetbench.records import DataSource

    fb = metadata.get("forgetbench") or {}
    sources = [DataSource(**s) for s in fb.get("sources") or ()]
    if not sources:
        raise ValueError("task metadata has no forgetbench.sources")
    data_dir = os.environ.get(DATA_DIR_ENV)
    per_source = {
        (s.name or str(i)): read_source(s, Path(data_dir) if data_dir and not s.generator else None)
        for i, s in enumerate(sources)
    }
    if fb.get("combine"):
        return list(load_ref(fb["combine"])(per_source))
    if len(per_source) != 1:
        raise ValueError("several sources need a forgetbench.combine function")
    return next(iter(per_source.values()))


def standalone_dataset(**metadata):
    """lm-eval `custom_dataset`: a DatasetDict with one `test` split (lm-eval passes the task's
    metadata as keyword arguments)."""
    import datasets

    from forgetbench.errors import UserError

    try:
        rows = rows_from_metadata(metadata)
    except UserError as e:  # the CLI's hint names --data-dir; standalone runs use the env variable
        raise UserError(f"{e} (standalone lm_eval: set {DATA_DIR_ENV}=DIR instead)") from e
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
