"""Fidelity: forgetbench's tasks against lm-eval's built-in tasks of the same name.

Tasks: mmlu, hellaswag, ifeval, gsm8k, and RL's Razor's truthfulqa_mc1, truthfulqa_mc2, winogrande,
humaneval, humaneval_instruct. lm-eval's humaneval utils load HF evaluate's `code_eval` from the hub
at import; offline, a stand-in with code_eval's interface runs the same program (candidate + "\n" +
test) in forgetbench's sandbox, so for humaneval the comparison covers prompts, generation, the
prediction filter and lm-eval's metric plumbing, not code_eval's own executor. With humaneval* it also
checks, on the same rows, that every canonical solution passes and a blank completion fails.

Both sides score the bundled SmolLM2-135M-Instruct (one HFLM instance, chat template on) on the same
rows: forgetbench's seeded --limit sample from a local copy of the hub data. forgetbench goes through
its production path (lmeval.score_task); the built-ins are lm-eval's own task configs pointed at the
same rows (mmlu: one `mmlu_<subject>` task per subject; gsm8k zero-shot, as forgetbench's). Prints the
score of each side, the difference in points and the number of items that disagree.

Usage: python benchmarks/fidelity.py --data-dir ../shared/data/hf [--limit 200] [--tasks mmlu,gsm8k]
       [--max-gen-toks N]  (the same generation cap on both sides)
       [--side forgetbench|lm-eval --save F.json] then [--compare OURS.json THEIRS.json]  (two processes)
       [--confirm-run-unsafe-code]  (needed for humaneval, humaneval_instruct: runs the model's code, sandboxed)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from forgetbench.tasks import data, registry  # noqa: E402
from forgetbench.eval import lmeval
from forgetbench.models.resolve import resolve  # noqa: E402
from forgetbench.records import EvalSettings  # noqa: E402

OVERRIDES = {"dataset_path": "json", "dataset_name": None, "custom_dataset": None, "test_split": "test",
             "training_split": None, "validation_split": None, "fewshot_split": None}
BUILTIN = {"hellaswag": "hellaswag", "ifeval": "ifeval", "gsm8k": "gsm8k", "truthfulqa_mc1": "truthfulqa_mc1",
           "truthfulqa_mc2": "truthfulqa_mc2", "winogrande": "winogrande", "humaneval": "humaneval",
           "humaneval_instruct": "humaneval_instruct"}


def _code_eval_standin() -> None:
    """Make `evaluate.load("code_eval")` (lm-eval's humaneval utils, at import) return an object with
    code_eval's compute(): pass@k of each problem's candidates, each `candidate + "\n" + reference`
    run in forgetbench's sandbox (greedy: one candidate, k = 1, pass@1 = passed or not)."""
    import types

    from forgetbench.tasks.scoring import sandbox

    def compute(references, predictions, k=(1,), **_):
        passed = [[sandbox.run(c + "\n" + ref, allowed=True).passed for c in cands]
                  for cands, ref in zip(predictions, references)]
        return {f"pass@{kk}": sum(p[0] for p in passed) / len(passed) for kk in k}, {"passed": passed}

    mod = types.ModuleType("evaluate")
    mod.load = lambda *a, **kw: types.SimpleNamespace(compute=compute)
    sys.modules["evaluate"] = mod


def humaneval_selfcheck(rows) -> str:
    """Canonical solutions must pass and a blank completion must fail, through forgetbench's scorer."""
    from forgetbench.tasks.scoring import humaneval, sandbox

    with sandbox.opened(True):
        canon = sum(humaneval.passes(r, r["prompt"] + r["canonical_solution"]) for r in rows)
        blank = sum(humaneval.passes(r, r["prompt"]) for r in rows)
    return f"humaneval self-check on {len(rows)} problems: canonical solutions pass {canon}/{len(rows)}, blank completions pass {blank}/{len(rows)}"


def _jsonl(rows) -> str:
    f = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
    for r in rows:
        f.write(json.dumps(r, default=str) + "\n")
    f.close()
    return f.name


def builtin_scores(lm, name: str, rows, metric: str, max_gen_toks: int | None = None) -> list[float]:
    """Per-row scores from lm-eval's built-in task(s), in the order of `rows`."""
    from lm_eval import evaluator
    from lm_eval.tasks import TaskManager

    from forgetbench.tasks.punkt import ensure_punkt_tab

    ensure_punkt_tab()
    if name.startswith("humaneval"):
        _code_eval_standin()
    tm = TaskManager(include_defaults=True)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[f"mmlu_{r['subject']}" if name == "mmlu" else BUILTIN[name]].append(i)
    out: dict[int, float] = {}
    for task_name, idx in groups.items():
        ov = {**OVERRIDES, "dataset_kwargs": {"data_files": {"test": _jsonl([rows[i] for i in idx])}}}
        if name == "gsm8k":
            ov["num_fewshot"] = 0
        task = tm._factory.build(tm.task_index[task_name], overrides=ov, registry=tm.task_index)
        if max_gen_toks is not None and task.config.output_type == "generate_until":
            task.config.generation_kwargs["max_gen_toks"] = max_gen_toks  # read when requests are built
        res = evaluator.simple_evaluate(model=lm, tasks=[task], task_manager=tm, log_samples=True,
                                        apply_chat_template=True, bootstrap_iters=0,
                                        confirm_run_unsafe_code=name.startswith("humaneval"))
        mname, _, filt = metric.partition(",")
        for s in res["samples"][task_name]:
            if s.get("filter", "none") == (filt or "none"):
                out[idx[int(s["doc_id"])]] = float(s[mname])
    return [out[i] for i in range(len(rows))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--tasks", default="mmlu,hellaswag,gsm8k,ifeval")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-gen-toks", type=int, help="cap the generation length on BOTH sides (a cheaper check of "
                    "prompts and scoring; ifeval's own 1280 tokens take about two CPU-hours per side for 200 rows here)")
    ap.add_argument("--side", choices=["forgetbench", "lm-eval"], help="score one side only and write its per-item "
                    "scores to --save (run the two sides as two processes, e.g. one per core, then --compare)")
    ap.add_argument("--save", type=Path, help="with --side: JSON file of {task: [scores]}")
    ap.add_argument("--compare", type=Path, nargs=2, metavar=("FORGETBENCH_JSON", "LMEVAL_JSON"),
                    help="print the comparison table of two --side runs and exit")
    ap.add_argument("--confirm-run-unsafe-code", action="store_true", help="humaneval*: run the model's code "
                    "(in forgetbench's sandbox, on both sides)")
    args = ap.parse_args()
    unsafe = [t for t in args.tasks.split(",") if t.startswith("humaneval")]
    if unsafe and not args.confirm_run_unsafe_code:
        ap.error(f"{', '.join(unsafe)} run model-generated code: add --confirm-run-unsafe-code")
    if args.compare:
        ours_all, theirs_all = (json.loads(f.read_text()) for f in args.compare)
        print(f"{'task':<19}{'n':>5}{'forgetbench':>13}{'lm-eval':>10}{'diff (pt)':>11}{'items differ':>14}")
        for name in ours_all:
            _row(name, ours_all[name], theirs_all[name])
        return
    if args.side and not args.save:
        ap.error("--side needs --save FILE")
    from forgetbench.eval.backends import build_lm

    settings = EvalSettings(batch_size=args.batch_size, max_gen_toks=args.max_gen_toks)
    model = resolve("smollm2-135m-instruct")
    lm = build_lm(model, settings)
    # bf16 loglikelihoods on CPU depend on which requests share a padded batch; forgetbench scores
    # mmlu as one task while lm-eval splits it per subject, so batches differ unless they hold one row.
    lm_single = build_lm(model, EvalSettings(batch_size=1))
    from forgetbench.runtime.hardware import describe, resolve_dtype

    print(describe(resolve_dtype(settings.dtype).dtype))
    print(f"{'task':<19}{'n':>5}{'forgetbench':>13}{'lm-eval':>10}{'diff (pt)':>11}{'items differ':>14}{'seconds':>9}")
    saved = {}
    for name in args.tasks.split(","):
        spec = registry.get(name)
        docs = data.load_docs(spec, data_dir=args.data_dir, limit=args.limit, seed=settings.seed)
        t = time.time()
        task_lm = lm_single if name == "mmlu" else lm
        if args.side in (None, "forgetbench"):
            run = lmeval.score_task(task_lm, model, spec, docs, settings, chat_template=True,
                                     confirm_unsafe_code=args.confirm_run_unsafe_code)
            ours = saved[name] = [i.score for i in run.items]
        if args.side in (None, "lm-eval"):
            theirs = saved[name] = builtin_scores(task_lm, name, list(docs.rows),
                                                  lmeval.primary_key(spec.primary_metric), args.max_gen_toks)
        if args.side:
            args.save.write_text(json.dumps(saved))
            print(f"{name}: {args.side} side scored {len(saved[name])} rows in {time.time() - t:.0f} s", flush=True)
        else:
            _row(name, ours, theirs, time.time() - t)
        if name.startswith("humaneval") and args.side in (None, "forgetbench"):
            print(humaneval_selfcheck(list(docs.rows)), flush=True)


def _row(name: str, ours: list[float], theirs: list[float], seconds: float | None = None) -> None:
    a, b = sum(ours) / len(ours), sum(theirs) / len(theirs)
    differ = sum(x != y for x, y in zip(ours, theirs))
    print(f"{name:<19}{len(ours):>5}{100 * a:>13.2f}{100 * b:>10.2f}{100 * (a - b):>11.2f}{differ:>14}"
          + (f"{seconds:>9.0f}" if seconds is not None else ""), flush=True)


if __name__ == "__main__":
    main()
