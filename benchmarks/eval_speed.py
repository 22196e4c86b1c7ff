"""Wall time of `forgetbench eval` on the bundled pair against two plain `lm_eval` runs.

Three timings over the same tasks and rows (the lite suite: generated rows, identical in both tools):
  cold          forgetbench eval BASE TUNED on an empty store
  base cached   the same after deleting the tuned model's runs (what a second tuned model costs)
  lm_eval x2    `lm_eval --model hf` once for BASE and once for TUNED (no per-item store, no pairing)

The pair is the bundled SmolLM2-135M-Instruct and the demo's SFT checkpoint (trained here if
`forgetbench demo` has not cached it yet). Each timing runs in float32 and in bfloat16 (side by side; on
CPUs without native bfloat16 the bfloat16 column takes several times longer), and the machine is printed.
`--workers 1,2` also times forgetbench with that many CPU worker processes per model (FORGETBENCH_WORKERS,
forgetbench/eval/workers.py): one column per dtype and worker count.
Usage: python benchmarks/eval_speed.py [--tasks lite_arith,lite_mc] [--dtypes float32,bfloat16] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from forgetbench.demo import DemoConfig, tuned_checkpoint  # noqa: E402
from forgetbench.models.resolve import resolve  # noqa: E402
from forgetbench.store import Store  # noqa: E402


def timed(cmd: list[str], env: dict) -> float:
    t = time.time()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - t


def measure(args, dtype: str, base, tuned: Path, env: dict, plain_done: dict) -> dict[str, float]:
    """The three timings of the module docstring, every model computing in `dtype`."""
    db = Path(tempfile.mkdtemp()) / "bench.duckdb"
    fb = [sys.executable, "-m", "forgetbench.cli", "eval", base.path, str(tuned), "--tasks", args.tasks,
          "--db", str(db), "--batch-size", str(args.batch_size), "--dtype", dtype]
    cold = timed(fb, env)
    tuned_hash = resolve(str(tuned)).content_hash
    with Store(db) as s:
        s.con.execute("DELETE FROM items WHERE run_id IN (SELECT run_id FROM runs WHERE model_hash = ?)", [tuned_hash])
        s.con.execute("DELETE FROM runs WHERE model_hash = ?", [tuned_hash])
    warm = timed(fb, env)
    if dtype in plain_done:  # plain lm_eval does not depend on forgetbench's worker count
        return {"cold": cold, "warm": warm, "plain": plain_done[dtype]}
    plain = 0.0
    for path in (base.path, str(tuned)):
        plain += timed([sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
                        f"pretrained={path},dtype={dtype}", "--include_path", str(ROOT / "tasks"),
                        "--tasks", args.tasks, "--apply_chat_template", "--batch_size", str(args.batch_size),
                        "--output_path", tempfile.mkdtemp(), "--log_samples"], env)
    plain_done[dtype] = plain
    return {"cold": cold, "warm": warm, "plain": plain}


def main() -> None:
    from forgetbench.demo import DEMO_TASKS
    from forgetbench.runtime.hardware import describe, resolve_dtype

    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default=",".join(DEMO_TASKS), help="default: the demo's tasks")
    ap.add_argument("--batch-size", type=int, default=64)  # the demo's
    ap.add_argument("--dtypes", default="float32,bfloat16", help="compared side by side (default both)")
    ap.add_argument("--workers", default="", help="worker processes per model, e.g. 1,2 (default: forgetbench's choice)")
    args = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "FORGETBENCH_PROGRESS": "0"}
    base = resolve("smollm2-135m-instruct")
    tuned, _ = tuned_checkpoint("sft", base.spec, base.content_hash, DemoConfig())
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    workers = [w.strip() for w in args.workers.split(",") if w.strip()] or [""]
    plain_done: dict = {}
    results = {}
    for d in dtypes:
        for w in workers:
            results[f"{d}/w{w}" if w else d] = measure(args, d, base, tuned, {**env, "FORGETBENCH_WORKERS": w}, plain_done)
    dtypes = list(results)
    print(f"{describe()}; dtype auto here: {resolve_dtype('auto').dtype}")
    print(f"tasks: {args.tasks}; batch size {args.batch_size}")
    print(f"{'':34}" + "".join(f"{d:>14}" for d in dtypes))
    for key, label in (("cold", "forgetbench eval, cold store"), ("warm", "forgetbench eval, base cached"),
                       ("plain", "plain lm_eval, base + tuned")):
        print(f"{label:<34}" + "".join(f"{results[d][key]:>12.1f} s" for d in dtypes))
    for d in dtypes:
        r = results[d]
        print(f"{d}: cold / plain = {r['cold'] / r['plain']:.2f}x   base-cached / plain = {r['warm'] / r['plain']:.2f}x")
    for d in dtypes[1:]:
        print(f"{d} / {dtypes[0]} (cold): {results[d]['cold'] / results[dtypes[0]]['cold']:.2f}x")


if __name__ == "__main__":
    main()
