"""Matched-gain reproduction on CPU: does on-policy training forget less than SFT at the same gain?

The bundled SmolLM2-135M-Instruct is trained on the lite_ifeval target by SFT (recipes/demo/sft.yaml, 1, 2
and 4 steps), on-policy SFT (recipes/cpu/onpolicy-sft.yaml, 1, 2 and 3 sampling rounds), GRPO
(recipes/cpu/rl.yaml, 8 completions per prompt, 5 and 10 steps) and self-SFT (recipes/cpu/self-sft.yaml,
3 steps, and its kept samples for 4 epochs);
each checkpoint is evaluated against the base on the demo suite (lite_ifeval target; lite_arith, lite_mc,
lite_refusal probes) with the forward KL(base || tuned) on lite_ifeval prompts. Printed and written to
OUT/reproduce.md (and --results): one row per run (gain, mean drop, KL with 95% intervals; train and eval
seconds); for every (SFT, on-policy) pair whose gain intervals overlap, their forgetting compared directly
(both were scored on the same probe items: a paired interval per probe, MOVER mean over the probes, as a
pair's mean drop is combined); a verdict line; the forgetting-vs-KL fit; CPU, dtype, torch, git commit.

Cost: ~90 min for all runs on a 2-core AVX2-only AMD EPYC in float32 (measured, see RUNS). Resumable:
a finished checkpoint in OUT/runs/<run>/ (also one put there by `forgetbench train --recipe ... --out
OUT/runs/<run>` with the same settings) is not retrained, one of another recipe is refused (exit 2), and
stored evaluations (the base once, then per model and task) are reused. The first evaluated run's eval
seconds include the base's evaluation; a run whose evaluation was stored shows 0.

Simplifications: one seed per run; "matched gain" = overlapping 95% gain intervals on 48 target items
(+-10-15 points wide), not equal gains; matched pairs share runs, so the verdict's counts are not
independent tests; 96 pinned rows per probe (eval's seeded stratified --limit subsample); KL on 16
prompts x 2 base samples; `forgetbench law` fits every pair in OUT's store, also runs not selected now.

Usage: python benchmarks/reproduce.py [--out DIR] [--runs sft-1,rl-5,...] [--dtype auto] [--results [PATH]]
                                     [--export SUBMISSIONS]  (each pair as a reference entry, labelled by budget)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))  # reproduce_report.py beside this file

from forgetbench.demo import BASE, DEMO_SUITE  # noqa: E402
from forgetbench.errors import UserError  # noqa: E402
from forgetbench.paths import TRAIN_RECORD  # noqa: E402
from forgetbench.records import Estimate, EvalSettings, TaskRun  # noqa: E402
from reproduce_report import (  # noqa: E402,F401 (the report's names are this script's API for the tests)
    ONPOLICY, Matched, fit_line, fmt, forgets_less, matched_line, matched_pairs, overlap, table, verdict)

# name -> (method, recipe file under recipes/, overrides). Cheapest first, so an interrupted run already
# has SFT and on-policy points. Measured on a 2-core AVX2-only AMD EPYC in float32 (2026-11-30), training:
# SFT 29 / 33 / 61 s; on-policy SFT 162 / 299 / 517 s (1 / 2 / 3 rounds of 96 samples); self-SFT 169 s;
# GRPO 344 / 808 s (5 / 10 steps); evaluation 246-283 s per tuned model, plus ~240 s once for the base.
# The nine runs before self-sft-4e: 84 min (64.7 in one go, the two GRPO checkpoints trained beforehand).
RUNS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # n_train 32 = 4 batches of 8: max_steps binds at every budget; only the steps differ between them
    "sft-1": ("sft", "demo/sft.yaml", ("n_train=32", "max_steps=1")),
    "sft-2": ("sft", "demo/sft.yaml", ("n_train=32", "max_steps=2")),
    "sft-4": ("sft", "demo/sft.yaml", ("n_train=32", "max_steps=4")),
    # epochs = sampling rounds; no step cap: the steps follow from how many samples pass the scorer
    "onpolicy-sft-1r": ("onpolicy-sft", "cpu/onpolicy-sft.yaml", ("epochs=1", "max_steps=null")),
    "self-sft": ("self-sft", "cpu/self-sft.yaml", ()),
    # self-SFT as shipped (3 steps) gained +10.4 [-0.5, +23.1]: the same kept samples for 4 epochs
    "self-sft-4e": ("self-sft", "cpu/self-sft.yaml", ("epochs=4", "max_steps=null")),
    # ... and twice the prompts at 8 samples each (more kept samples, not more passes over the same 11)
    "self-sft-48x8": ("self-sft", "cpu/self-sft.yaml", ("n_train=48", "samples_per_prompt=8", "max_steps=null")),
    "onpolicy-sft-2r": ("onpolicy-sft", "cpu/onpolicy-sft.yaml", ("epochs=2", "max_steps=null")),
    "rl-5": ("rl", "cpu/rl.yaml", ("max_steps=5",)),
    "onpolicy-sft-3r": ("onpolicy-sft", "cpu/onpolicy-sft.yaml", ("epochs=3", "max_steps=null")),
    "rl-10": ("rl", "cpu/rl.yaml", ("max_steps=10",)),
}
LIMIT = 96  # rows per task (the 48-row target stays whole); evaluation settings below as measured above
KL_PROMPTS, KL_SAMPLES, BATCH_SIZE = 16, 2, 64


@dataclass(frozen=True)
class Planned:
    name: str
    method: str
    recipe: dict
    recipe_file: Path


@dataclass(frozen=True)
class Result:
    name: str
    method: str
    budget: str
    gain: Estimate  # on the target, score units (x100 = points)
    drop: Estimate | None  # mean over the probes
    kl: Estimate | None  # forward KL per sequence, nats
    probe_runs: dict[str, TaskRun]  # probe -> the tuned model's scored items (for the direct comparisons)
    train_s: float
    eval_s: float  # 0 when every evaluation was already stored
    train_cached: bool
    eval_cached: bool
    dtype: str = "float32"  # trained and evaluated in
    pair_id: str = ""  # the stored pair (for --export)
    record: dict = field(default_factory=dict, repr=False, compare=False)  # forgetbench_train.json


def plan(names: list[str], dtype: str = "auto") -> list[Planned]:
    """Each named run's recipe, loaded and checked (UserError before any model work)."""
    from forgetbench.train.methods import METHODS
    from forgetbench.train.recipe import load_recipe, recipes_dir

    unknown = [n for n in names if n not in RUNS]
    if unknown or not names:
        raise UserError(f"--runs: unknown run(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(RUNS)}")
    out = []
    for name in names:
        method, file, overrides = RUNS[name]
        if method not in METHODS:
            raise UserError(f"run {name}: unknown method {method!r}; registered: {', '.join(METHODS)}")
        path = recipes_dir() / file
        out.append(Planned(name, method, load_recipe(path, method, [*overrides, f"dtype={dtype}"]), path))
    return out


def budget(record: dict) -> str:
    rounds = sum("sampled" in r for r in record.get("data", {}).get("rounds") or [])  # SFT logs one round, unsampled
    return f"{rounds} rounds/{record['steps']} steps" if rounds else f"{record['steps']} steps"


def computed_rows(db: Path) -> tuple[int, ...]:
    """Rows of the tables an evaluation adds to when it computes anything (runs, KL terms)."""
    from forgetbench.store import Store

    if not db.exists():
        return ()
    with Store(db, read_only=True) as s:
        c = s.counts()
    return c["runs"], c["kl_samples"], c["kl_items"]


def stale(planned: list[Planned], out: Path) -> list[str]:
    """Runs whose OUT/runs/<run> holds a checkpoint of another recipe (an older RUNS table, another dtype)."""
    def canon(d: dict) -> str:
        return json.dumps(d, sort_keys=True, default=str)

    bad = []
    for p in planned:
        f = out / "runs" / p.name / TRAIN_RECORD
        # train() records the recipe with method, task and base filled in
        if f.is_file() and canon(json.loads(f.read_text()).get("recipe")) != canon({**p.recipe, "base": BASE}):
            bad.append(p.name)
    return bad


def probe_runs(db: Path, report) -> dict[str, TaskRun]:
    """The tuned model's scored items on each probe of a stored pair (its runs are among the pair's)."""
    from forgetbench.store import Store

    out = {}
    with Store(db, read_only=True) as s:
        for d in report.deltas:
            if d.role == "probe":
                (h,) = s.run_headers(report.settings["run_ids"], report.tuned.content_hash, d.task)
                out[d.task] = s.get_run(h.run_id)
    return out


def run_one(p: Planned, out: Path, db: Path) -> Result:
    """Train (or reuse) the checkpoint, evaluate it (reusing stored runs), load its probe items."""
    from forgetbench.eval.run import EvalRequest, evaluate_pair
    from forgetbench.train.run import ensure_trained

    print(f"[reproduce] {p.name}: {p.method}, recipes/{RUNS[p.name][1]} {' '.join(RUNS[p.name][2])}",
          file=sys.stderr, flush=True)
    ckpt = out / "runs" / p.name  # `forgetbench train --recipe ... --out OUT/runs/<run>` trains the same one
    record, train_cached = ensure_trained({**p.recipe, "base": BASE}, BASE, ckpt, recipe_file=p.recipe_file)
    before, t = computed_rows(db), time.time()
    report = evaluate_pair(EvalRequest(
        base=BASE, tuned=str(ckpt), suite=DEMO_SUITE, target=record["task"], db=db,
        limit=LIMIT, settings=EvalSettings(batch_size=BATCH_SIZE, dtype=record["recipe"]["dtype"]),
        kl_prompts=KL_PROMPTS, kl_samples=KL_SAMPLES))
    eval_cached = computed_rows(db) == before
    eval_s = 0.0 if eval_cached else time.time() - t
    kl = report.kl["fwd_seq"] if report.kl else None
    return Result(p.name, p.method, budget(record), next(d.delta for d in report.deltas if d.role == "target"),
                  report.mean_drop, Estimate(kl["value"], kl["lo"], kl["hi"]) if kl else None, probe_runs(db, report),
                  float(record["wall_seconds"]), eval_s, train_cached, eval_cached, record["recipe"]["dtype"],
                  report.pair_id or "", record)


def export(results: list[Result], db: Path, subs: Path) -> list[str]:
    """Each run's pair as a reference entry SUBS/reference-smollm2-135m-lite-ifeval-repro-<run>, labelled by
    its budget; returns the lines for SUBS/reference.yaml, which only maintainers edit (submissions/README.md,
    "Trust"), so they are printed, not written."""
    import hashlib

    from forgetbench.demo import LICENCE
    from forgetbench.leaderboard.export import export_entry
    from forgetbench.leaderboard.submission import RESULTS_FILE

    lines = []
    for r in results:
        entry = subs / f"reference-smollm2-135m-lite-ifeval-repro-{r.name}"
        _, file, overrides = RUNS[r.name]
        cpu = r.record.get("machine", {}).get("cpu", "a CPU")
        export_entry(db, entry, pair_id=r.pair_id, metadata={
            "title": f"SmolLM2-135M-Instruct, {r.method} on lite_ifeval, {r.budget} (forgetbench reproduction, CPU)",
            "contact": "forgetbench maintainers (GitHub issues)", "licence": LICENCE, "reference": True,
            "notes": (f"Reference entry written by benchmarks/reproduce.py --export: recipes/{file} "
                      f"{' '.join(overrides) or '(as shipped)'} ({r.budget}) on the bundled SmolLM2-135M-Instruct, "
                      f"trained and evaluated in {r.dtype} on {cpu}; lite_ifeval target (48 rows), lite_arith, lite_mc "
                      f"and lite_refusal probes ({LIMIT} pinned rows each); one seed. One point of the matched-gain "
                      "comparison in benchmarks/results/ (the run name is the budget).")})
        sha = hashlib.sha256((entry / RESULTS_FILE).read_bytes()).hexdigest()
        lines += [f"- id: {entry.name}", f"  sha256: {sha}"]
    return lines


def law_text(db: Path, out: Path) -> str:
    """`forgetbench law` on the store (every pair in it), its printout captured for the results file."""
    from forgetbench.kl import command as law_command

    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            law_command.main(db, out / "law.png")
    except UserError as e:
        return buf.getvalue() + f"forgetbench law: {e}"
    return buf.getvalue().rstrip()


def machine(dtype: str | None) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    from forgetbench.runtime.hardware import describe

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    try:
        torch = version("torch")
    except PackageNotFoundError:
        torch = "not installed"
    return [f"git commit: {commit}", describe(dtype), f"torch {torch}"]


def parse_args(argv: list[str] | None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("reproduce-out"), help="checkpoints, store, reproduce.md")
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {', '.join(RUNS)}")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--results", type=Path, nargs="?", const=REPO / "benchmarks" / "results" /
                    f"reproduce-{datetime.date.today().isoformat()}.md",
                    help="also write the results file here (no PATH: benchmarks/results/reproduce-<today>.md)")
    ap.add_argument("--export", type=Path, metavar="SUBMISSIONS",
                    help="also export every run's pair as a reference entry into this submissions folder")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    try:
        plan(names, args.dtype)  # bad input fails here, before torch is even imported
        from forgetbench.train.run import with_dtype

        # "auto" resolved once: the recipes (and so the cached checkpoints' records) name the real dtype
        planned = plan(names, with_dtype({"dtype": args.dtype})["dtype"])
        if stale(planned, args.out):
            raise UserError(f"{args.out / 'runs'}: {', '.join(stale(planned, args.out))} hold(s) a checkpoint of "
                            "another recipe; remove it or use another --out")
    except UserError as e:
        print(f"reproduce: {e}", file=sys.stderr)
        return 2
    from forgetbench.tasks import registry

    t0, db = time.time(), args.out / "reproduce.duckdb"
    results = []
    for p in planned:
        results.append(run_one(p, args.out, db))
        print(f"[reproduce] {p.name}: done ({time.time() - t0:.0f} s so far)", file=sys.stderr, flush=True)
    specs = {t: registry.get(t) for r in results for t in r.probe_runs}
    matched = matched_pairs(results, specs)
    wall = time.time() - t0
    lines = ["gain on lite_ifeval (prompt-level strict) and mean drop over lite_arith, lite_mc, lite_refusal in "
             f"points, 95% intervals; forward KL(base || tuned) in nats per sequence ({KL_PROMPTS} lite_ifeval "
             f"prompts x {KL_SAMPLES} base samples); {LIMIT} rows per probe, 48 target rows", "",
             table(results), "", "matched gain (SFT vs on-policy, gain intervals overlap; forgetting compared "
             "item by item on the probes):"]
    lines += [matched_line(m) for m in matched] or ["  none"]
    lines += ["", verdict(matched), "", fit_line(results), "", law_text(db, args.out), "",
              f"total wall time: {wall:.0f} s ({wall / 60:.1f} min) for {len(results)} runs",
              "cached: training " + (", ".join(r.name for r in results if r.train_cached) or "none")
              + "; evaluation " + (", ".join(r.name for r in results if r.eval_cached) or "none")]
    text = "\n".join(lines)
    print(text)
    md = [f"# benchmarks/reproduce.py, {datetime.date.today().isoformat()}", "",
          f"Command: `python benchmarks/reproduce.py {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
          *[f"- {x}" for x in machine(", ".join(sorted({r.dtype for r in results})))], "", "```", text, "```", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reproduce.md").write_text("\n".join(md))
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text("\n".join(md))
        print(f"[reproduce] results written to {args.results}", file=sys.stderr)
    if args.export:
        lines = export(results, db, args.export)
        print(f"[reproduce] {len(results)} entries exported to {args.export}; a maintainer lists them in "
              f"{args.export / 'reference.yaml'}:\n" + "\n".join(lines), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
