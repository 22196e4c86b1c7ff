"""Score one model's tasks side by side on a CPU: one single-thread worker process per usable core.

Why: a small model's CPU decoding step is a few dozen small matrix products plus Python and framework
overhead per layer. Two threads on one process speed the products up ~1.5x and the overhead not at
all; two single-thread processes run both in parallel. Measured on a 2-core AMD EPYC (AVX2, float32,
SmolLM2-135M, greedy, batch 32): one process with 2 threads 97 tok/s, one with 1 thread 68 tok/s, two
1-thread processes at once 66 + 66 tok/s. A whole evaluation gains less (the tasks rarely split evenly
and each worker starts its own interpreter and model): the bundled model on the demo suite took 159 s
with two workers against 169 s in one process (`benchmarks/eval_speed.py --workers 1,2` prints the
figures of the machine it runs on).

Used by `forgetbench.eval.run.ensure_runs` when the backend allows it (`Backend.cpu_workers`: hf) on the
CPU, the process may use >= 2 cores, >= 2 tasks are to be scored and the copies of the model fit in half
the available memory.
`FORGETBENCH_WORKERS=N` sets the count (1 = the old single-process path). The parent stores each
task's run as it arrives (DuckDB has one writer), so an interruption still loses no finished task.

Simplifications: the unit of work is a task (no task is split over workers); tasks go longest first
by a cost estimate (items x generation length; loglikelihood items count as 20 tokens, about what
their prompt-only forward passes cost); each worker loads the model once; processes are spawned, not
forked (forking a process whose OpenMP threads have started can deadlock); any failure to start or
run the pool falls back to the single-process path for the tasks not yet stored.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from forgetbench.eval.backends import backend
from forgetbench.models.resolve import is_fake
from forgetbench.runtime.hardware import cores
from forgetbench.records import Docs, EvalSettings, ModelRef, TaskRun, TaskSpec

ENV = "FORGETBENCH_WORKERS"
LOGLIK_TOKENS = 20  # cost of one loglikelihood item in generated-token equivalents (see the docstring)


def worker_count(settings: EvalSettings, model: ModelRef, n_tasks: int) -> int:
    """How many worker processes to score `n_tasks` tasks with (1 = in this process)."""
    env = os.environ.get(ENV, "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            from forgetbench.errors import UserError

            raise UserError(f"{ENV}={env!r}: expected a positive whole number of worker processes")
        wanted = int(env)
    else:
        wanted = cores()
    if not backend(settings.backend).cpu_workers or settings.device != "cpu" or is_fake(model):
        return 1
    n = min(wanted, cores(), n_tasks)
    while n > 1 and n * _weights_bytes(model, settings.dtype) > _available_bytes() / 2:
        n -= 1
    return max(1, n)


def _weights_bytes(model: ModelRef, dtype: str) -> int:
    """Memory one loaded copy needs, roughly: the weight files rescaled to the evaluation dtype."""
    files = list(Path(model.path).glob("*.safetensors")) + list(Path(model.path).glob("*.bin"))
    stored = sum(f.stat().st_size for f in files)
    return stored * 2 if dtype == "float32" else stored  # checkpoints are mostly stored in 16-bit


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30  # not Linux: assume a modest machine


def cost(spec: TaskSpec, docs: Docs, gen_settings: dict) -> int:
    """Estimated work of one task in generated-token equivalents (only the order matters)."""
    if gen_settings.get("output_type") == "generate_until":
        toks = (gen_settings.get("generation_kwargs") or {}).get("max_gen_toks") or 256
        return len(docs.rows) * (int(toks) + 8)
    return len(docs.rows) * LOGLIK_TOKENS


def score_in_workers(n: int, model: ModelRef, todo: list[tuple[TaskSpec, Docs]], settings: EvalSettings,
                     chat: bool, confirm_unsafe_code: bool, on_done) -> list[TaskSpec]:
    """Score `todo` in `n` worker processes, calling on_done(spec, run, seconds) in this process as each
    task finishes; returns the tasks left unscored because the pool could not start or broke."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    from forgetbench.eval import lmeval

    order = sorted(todo, key=lambda sd: -cost(sd[0], sd[1], lmeval.generation_settings(sd[0], settings, chat)))
    left = {spec.name: spec for spec, _ in order}
    try:
        with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn"), initializer=_init,
                                 initargs=(model, settings)) as pool:
            futures = {pool.submit(_score, spec, docs, chat, confirm_unsafe_code): spec for spec, docs in order}
            for fut in as_completed(futures):
                spec = futures[fut]
                run, seconds = fut.result()
                on_done(spec, run, seconds)
                del left[spec.name]
    except (BrokenProcessPool, OSError) as e:
        print(f"[eval] worker processes failed ({type(e).__name__}: {e}); scoring the rest in this process",
              file=sys.stderr, flush=True)
    return list(left.values())


# ------------------------------------------------------------------------------ in the worker

_STATE: dict = {}


def _init(model: ModelRef, settings: EvalSettings) -> None:
    # Before torch is imported in this fresh process: one OpenMP thread, and no progress bars from
    # several processes interleaving on one terminal (the parent reports each task as it finishes).
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["TQDM_DISABLE"] = "1"
    os.environ["FORGETBENCH_PROGRESS"] = "0"
    _STATE.update(model=model, settings=settings)


def _score(spec: TaskSpec, docs: Docs, chat: bool, confirm_unsafe_code: bool) -> tuple[TaskRun, float]:
    import time

    from forgetbench.eval import lmeval
    from forgetbench.eval.backends import build_lm

    if "lm" not in _STATE:
        _STATE["lm"] = build_lm(_STATE["model"], _STATE["settings"])
    started = time.time()
    run = lmeval.score_task(_STATE["lm"], _STATE["model"], spec, docs, _STATE["settings"], chat, confirm_unsafe_code)
    return run, time.time() - started
