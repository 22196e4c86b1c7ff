"""Small reproduction of the seeds on CPU: does on-policy data forget less at similar gain?

The bundled SmolLM2-135M-Instruct is trained on the lite_ifeval target with the demo's recipes
(recipes/demo/*.yaml) at three budgets per method: SFT (expert responses), on-policy SFT (the current
model resampled every round, correct samples kept) and RL (GRPO, reward = the task's scorer). Each
checkpoint is evaluated against the base on the lite suite (paired bootstrap CIs) with the forward
KL(base || tuned) on lite_ifeval prompts. Prints one row per run (gain, mean drop over the four lite
probes, KL, each with its 95% CI), the drop of each method at matched gain, and the forgetting-vs-KL fit.

Runs are resumable: a finished checkpoint (OUT/runs/<run>/forgetbench_train.json) is not retrained and
stored evaluations are reused. About an hour on 2 cores.

Usage: python benchmarks/reproduce.py [--out DIR] [--methods sft,onpolicy-sft,rl] [--runs sft-4,...]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from forgetbench.kl import command as law_command  # noqa: E402
from forgetbench.demo import BASE, demo_recipe, summary_table  # noqa: E402
from forgetbench.records import EvalSettings  # noqa: E402

# Three budgets per method. SFT and RL: optimizer steps (epochs large enough that max_steps binds).
# On-policy SFT: sampling rounds; its steps follow from how many samples pass the scorer each round.
RUNS = {
    "sft-3": ("sft", ["max_steps=3"]),
    "sft-6": ("sft", ["max_steps=6"]),
    "sft-12": ("sft", ["max_steps=12", "epochs=2"]),
    "onpolicy-sft-2r": ("onpolicy-sft", ["epochs=2", "max_steps=null"]),
    "onpolicy-sft-4r": ("onpolicy-sft", ["epochs=4", "max_steps=null"]),
    "onpolicy-sft-6r": ("onpolicy-sft", ["epochs=6", "max_steps=null"]),
    "rl-6": ("rl", ["max_steps=6"]),
    "rl-12": ("rl", ["max_steps=12"]),
    "rl-12-lr3e-5": ("rl", ["max_steps=12", "lr=3e-5"]),
}


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    steps: int
    seconds: float
    report: object  # forgetbench.records.PairReport


def train_run(name: str, method: str, overrides: list[str], out: Path) -> tuple[Path, dict]:
    from forgetbench.train.run import ensure_trained

    recipe, path = demo_recipe(method, tuple(overrides))
    ckpt = out / "runs" / name
    print(f"[reproduce] {name}: {' '.join(overrides)}", file=sys.stderr)
    record, cached = ensure_trained(recipe, BASE, ckpt, recipe_file=path)
    if cached:
        print(f"[reproduce] {name}: cached", file=sys.stderr)
    return ckpt, record


def _gain(report):
    return next(d for d in report.deltas if d.role == "target").delta


def matched_gain(rows: list[Row]) -> list[str]:
    """For every pair of runs of different methods whose gain CIs overlap: which one dropped less."""
    out = []
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if a.method == b.method:
                continue
            ga, gb = _gain(a.report), _gain(b.report)
            if ga.lo <= gb.hi and gb.lo <= ga.hi and a.report.mean_drop and b.report.mean_drop:
                da, db = a.report.mean_drop, b.report.mean_drop
                sep = "CIs separate" if da.hi < db.lo or db.hi < da.lo else "CIs overlap"
                out.append(f"{a.name} (gain {100 * ga.value:+.1f}, drop {100 * da.value:+.1f}) vs {b.name} "
                           f"(gain {100 * gb.value:+.1f}, drop {100 * db.value:+.1f}): {sep}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("reproduce-out"))
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {', '.join(RUNS)}")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    from forgetbench.eval.run import EvalRequest, evaluate_pair

    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    unknown = set(names) - set(RUNS)
    if unknown:
        sys.exit(f"unknown runs: {', '.join(sorted(unknown))}; known: {', '.join(RUNS)}")
    db = args.out / "reproduce.duckdb"
    rows: list[Row] = []
    t0 = time.time()
    for name in names:
        method, overrides = RUNS[name]
        ckpt, record = train_run(name, method, overrides, args.out)
        report = evaluate_pair(EvalRequest(base=BASE, tuned=str(ckpt), suite="lite", target=record["task"], db=db,
                                           settings=EvalSettings(batch_size=args.batch_size)))
        rows.append(Row(name, method, record["steps"], record["wall_seconds"], report))
        print(f"[reproduce] {name}: done ({time.time() - t0:.0f} s so far)", file=sys.stderr, flush=True)

    from forgetbench.runtime.hardware import describe

    lines = [describe(rows[0].report.settings.get("dtype") if rows else None), "",
             "gain on lite_ifeval (prompt-level strict) and mean drop over the lite probes in points, 95% CIs;",
             "KL(base || tuned) in nats per sequence on lite_ifeval prompts (32 prompts x 4 base samples)", ""]
    table = summary_table([(r.name, r.report) for r in rows]).splitlines()
    lines += [table[0] + "steps  train s", table[1] + "-" * 15]
    lines += [f"{t}{r.steps:<7}{r.seconds:<8.0f}" for t, r in zip(table[2:], rows)]
    lines += ["", "matched gain (gain CIs overlap, different methods):"] + (matched_gain(rows) or ["  none"])
    text = "\n".join(lines)
    print(text)
    (args.out / "reproduce.md").write_text(text + "\n")
    print(f"\n[reproduce] {len(rows)} runs in {time.time() - t0:.0f} s; forgetting vs KL: "
          f"forgetbench law --db {db}", file=sys.stderr)
    law_command.main(db, args.out / "law.png")


if __name__ == "__main__":
    main()
