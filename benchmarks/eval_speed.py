"""Wall time of `forgetbench eval` on the bundled pair against two plain `lm_eval` runs.

Three timings over the same tasks and rows (the lite suite: generated rows, identical in both tools):
  cold          forgetbench eval BASE TUNED on an empty store
  base cached   the same after deleting the tuned model's runs (what a second tuned model costs)
  lm_eval x2    `lm_eval --model hf` once for BASE and once for TUNED (no per-item store, no pairing)

The pair is the bundled SmolLM2-135M-Instruct and the demo's SFT checkpoint (trained here if
`forgetbench demo` has not cached it yet). Usage: python benchmarks/eval_speed.py [--tasks lite_countdown,lite_mc]
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

from forgetbench import registry  # noqa: E402
from forgetbench.demo import DemoConfig, tuned_checkpoint  # noqa: E402
from forgetbench.models import resolve  # noqa: E402
from forgetbench.store import Store  # noqa: E402


def timed(cmd: list[str], env: dict) -> float:
    t = time.time()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default=",".join(t.name for t in registry.suite("lite")))
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    base = resolve("smollm2-135m-instruct")
    tuned, _ = tuned_checkpoint("sft", base.spec, base.content_hash, DemoConfig())
    db = Path(tempfile.mkdtemp()) / "bench.duckdb"
    fb = [sys.executable, "-m", "forgetbench.cli", "eval", base.path, str(tuned), "--tasks", args.tasks,
          "--db", str(db), "--batch-size", str(args.batch_size)]
    cold = timed(fb, env)
    tuned_hash = resolve(str(tuned)).content_hash
    with Store(db) as s:
        s.con.execute("DELETE FROM items WHERE run_id IN (SELECT run_id FROM runs WHERE model_hash = ?)", [tuned_hash])
        s.con.execute("DELETE FROM runs WHERE model_hash = ?", [tuned_hash])
    warm = timed(fb, env)
    plain = 0.0
    for path in (base.path, str(tuned)):
        plain += timed([sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
                        f"pretrained={path},dtype=bfloat16", "--include_path", str(ROOT / "tasks"),
                        "--tasks", args.tasks, "--apply_chat_template", "--batch_size", str(args.batch_size),
                        "--output_path", tempfile.mkdtemp(), "--log_samples"], env)
    print(f"tasks: {args.tasks}")
    print(f"forgetbench eval, cold store     : {cold:7.1f} s")
    print(f"forgetbench eval, base cached    : {warm:7.1f} s")
    print(f"plain lm_eval, base + tuned      : {plain:7.1f} s")
    print(f"cold / plain = {cold / plain:.2f}x   base-cached / plain = {warm / plain:.2f}x")


if __name__ == "__main__":
    main()
