"""Matched-gain reproduction on CPU: does on-policy training forget less than SFT at the same gain?

The bundled SmolLM2-135M-Instruct is trained on the lite_ifeval target by SFT (recipes/demo/sft.yaml, 1, 2
and 4 steps), on-policy SFT (recipes/cpu/onpolicy-sft.yaml, 1, 2 and 3 sampling rounds), GRPO
(recipes/cpu/rl.yaml, 8 completions per prompt, 5 and 10 steps) and self-SFT (recipes/cpu/self-sft.yaml);
each checkpoint is evaluated against the base on the demo suite (lite_ifeval target; lite_arith, lite_mc,
lite_refusal probes) with the forward KL(base || tuned) on lite_ifeval prompts. Printed and written to
OUT/reproduce.md (and --results): one row per run (gain, mean drop, KL with 95% intervals; train and eval
seconds); for every (SFT, on-policy) pair whose gain intervals overlap, their forgetting compared directly
(both were scored on the same probe items: a paired interval per probe, MOVER mean over the probes, as a
pair's mean drop is combined); a verdict line; the forgetting-vs-KL fit; CPU, dtype, torch, git commit.

Cost: ~80-90 min for all runs on a 2-core AVX2-only AMD EPYC in float32 (estimates at RUNS). Resumable:
a finished checkpoint in OUT/runs/<run>/ (also one put there by `forgetbench train --recipe ... --out
OUT/runs/<run>` with the same settings) is not retrained, one of another recipe is refused (exit 2), and
stored evaluations (the base once, then per model and task) are reused. The first evaluated run's eval
seconds include the base's evaluation; a run whose evaluation was stored shows 0.

Simplifications: one seed per run; "matched gain" = overlapping 95% gain intervals on 48 target items
(+-10-15 points wide), not equal gains; matched pairs share runs, so the verdict's counts are not
independent tests; 96 pinned rows per probe (eval's seeded stratified --limit subsample); KL on 16
prompts x 2 base samples; `forgetbench law` fits every pair in OUT's store, also runs not selected now.

Usage: python benchmarks/reproduce.py [--out DIR] [--runs sft-1,rl-5,...] [--dtype auto] [--results [PATH]]
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
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from forgetbench import stats  # noqa: E402
from forgetbench.demo import BASE, DEMO_SUITE  # noqa: E402
from forgetbench.errors import UserError  # noqa: E402
from forgetbench.paths import TRAIN_RECORD  # noqa: E402
from forgetbench.records import Estimate, EvalSettings, TaskRun, TaskSpec  # noqa: E402
from forgetbench.stats.fit import line_fit  # noqa: E402
from forgetbench.stats.paired import interval_of, task_delta  # noqa: E402

# name -> (method, recipe file under recipes/, overrides). Cheapest first, so an interrupted run already
# has SFT and on-policy points. Assumed cost per run on a 2-core AVX2-only AMD EPYC in float32 (training +
# evaluation): SFT ~0.5 / 0.7 / 1.2 min training (the demo's 2 steps took 39 s); on-policy SFT ~2 min per
# round (96 samples of up to 96 tokens, then 2-3 steps); self-SFT ~3 min; GRPO ~1.2 min per step (10 steps
# measured 12 min); evaluation ~3-4 min per tuned model (4 tasks, <= 96 rows each, plus 32 KL sequences)
# and ~4 min once for the base. All nine runs: ~80-90 min.
RUNS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # n_train 32 = 4 batches of 8: max_steps binds at every budget; only the steps differ between them
    "sft-1": ("sft", "demo/sft.yaml", ("n_train=32", "max_steps=1")),
    "sft-2": ("sft", "demo/sft.yaml", ("n_train=32", "max_steps=2")),
    "sft-4": ("sft", "demo/sft.yaml", ("n_train=32", "max_steps=4")),
    # epochs = sampling rounds; no step cap: the steps follow from how many samples pass the scorer
    "onpolicy-sft-1r": ("onpolicy-sft", "cpu/onpolicy-sft.yaml", ("epochs=1", "max_steps=null")),
    "self-sft": ("self-sft", "cpu/self-sft.yaml", ()),
    "onpolicy-sft-2r": ("onpolicy-sft", "cpu/onpolicy-sft.yaml", ("epochs=2", "max_steps=null")),
    "rl-5": ("rl", "cpu/rl.yaml", ("max_steps=5",)),
    "onpolicy-sft-3r": ("onpolicy-sft", "cpu/onpolicy-sft.yaml", ("epochs=3", "max_steps=null")),
    "rl-10": ("rl", "cpu/rl.yaml", ("max_steps=10",)),
}
ONPOLICY = ("onpolicy-sft", "rl", "self-sft")  # compared against "sft" at matched gain
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


@dataclass(frozen=True)
class Matched:
    sft: Result
    onpolicy: Result
    less: Estimate  # SFT's drop - the on-policy run's drop, paired on the probe items


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


def fmt(e: Estimate | None, scale: float = 100.0, f: str = "+.1f") -> str:
    return "-" if e is None else f"{scale * e.value:{f}} [{scale * e.lo:{f}}, {scale * e.hi:{f}}]"


def overlap(a: Estimate, b: Estimate) -> bool:
    return a.lo <= b.hi and b.lo <= a.hi


def forgets_less(specs: dict[str, TaskSpec], sft: dict[str, TaskRun], onpolicy: dict[str, TaskRun]) -> Estimate:
    """How much less the on-policy model forgets than the SFT model: per probe, the paired interval of
    (on-policy score - SFT score) on the items both were scored on (= SFT's drop - the on-policy drop,
    sign-flipped where lower is better), combined over probes by the MOVER mean as a pair's mean drop is.
    task_delta with role "target" computes exactly that paired delta (base = SFT, tuned = on-policy),
    with the task's own clusters, strata and weights."""
    if set(sft) != set(onpolicy) or not sft:
        raise ValueError(f"probe sets differ: {sorted(sft)} vs {sorted(onpolicy)}")
    deltas = [task_delta(specs[t], "target", sft[t], onpolicy[t]).delta for t in sorted(sft)]
    iv = stats.mean_of([interval_of(d) for d in deltas])
    return Estimate(float(iv.value), float(iv.lo), float(iv.hi), iv.method)


def matched_pairs(results: list[Result], specs: dict[str, TaskSpec]) -> list[Matched]:
    """Every (SFT run, on-policy run) whose gain intervals overlap, with the direct forgetting difference."""
    return [Matched(s, o, forgets_less(specs, s.probe_runs, o.probe_runs))
            for s in results if s.method == "sft"
            for o in results if o.method in ONPOLICY and overlap(s.gain, o.gain)]


def matched_line(m: Matched) -> str:
    side = "excludes 0" if m.less.lo > 0 or m.less.hi < 0 else "includes 0"
    return (f"{m.sft.name} (gain {fmt(m.sft.gain)}) vs {m.onpolicy.name} (gain {fmt(m.onpolicy.gain)}): mean drop "
            f"{fmt(m.sft.drop)} vs {fmt(m.onpolicy.drop)}; on-policy forgets {fmt(m.less)} points less (interval {side})")


def verdict(matched: list[Matched]) -> str:
    if not matched:
        return "verdict: no SFT and on-policy runs with overlapping gain intervals: no matched-gain comparison"
    less = sum(m.less.lo > 0 for m in matched)
    more = sum(m.less.hi < 0 for m in matched)
    return (f"verdict: {len(matched)} matched pairs; the on-policy run forgets less (interval excluding 0) in {less}, "
            f"more in {more}, inconclusive in {len(matched) - less - more} (pairs share runs: not independent tests)")


def fit_line(results: list[Result]) -> str:
    pts = [(r.kl.value, 100 * r.drop.value) for r in results if r.kl is not None and r.drop is not None]
    f = line_fit([x for x, _ in pts], [y for _, y in pts])
    if f is None:
        return f"line fit of mean drop on forward KL: not enough runs with distinct KL ({len(pts)})"
    r2 = "n/a" if f.r2 is None else f"{f.r2:.3f}"
    return (f"line fit over these {f.n} runs: mean drop (points) = {f.slope:+.3g} x KL (nats/seq) "
            f"{f.intercept:+.2f}; R² {r2}")


def table(results: list[Result]) -> str:
    head = f"{'run':<17}{'method':<14}{'budget':<18}{'gain (pts)':<22}{'mean drop (pts)':<22}{'KL nats/seq':<22}"
    lines = [head + "train s  eval s", "-" * (len(head) + 15)]
    for r in results:
        lines.append(f"{r.name:<17}{r.method:<14}{r.budget:<18}{fmt(r.gain):<22}{fmt(r.drop):<22}"
                     f"{fmt(r.kl, 1.0, '.3g'):<22}{r.train_s:<9.0f}{r.eval_s:.0f}")
    return "\n".join(lines)


def budget(record: dict) -> str:
    rounds = len(record.get("data", {}).get("rounds") or [])
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
                  float(record["wall_seconds"]), eval_s, train_cached, eval_cached, record["recipe"]["dtype"])


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
