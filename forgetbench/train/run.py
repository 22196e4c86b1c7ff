"""`forgetbench train`: make a tuned checkpoint from a base model on one target task, with TRL.

Methods (the four of "Retaining by Doing", Chen et al. 2025; registered in forgetbench.train.methods,
which says how to add one):
- sft:          supervised fine-tuning on expert responses (`--data` pairs, or the task's own solver);
- self-sft:     sample N responses per training prompt from the base model once, keep the correct ones
                (the task's eval scorer), fine-tune on them;
- onpolicy-sft: the same, but resampled from the CURRENT model at the start of every epoch;
- rl:           GRPO (forgetbench.train.rl) with the task's eval scorer as the reward.

The three SFT methods are one loop of "rounds" on one in-memory model and one AdamW: sft and self-sft
are a single round of `epochs` epochs; onpolicy-sft is `epochs` rounds of one epoch each, sampling before
each. The learning-rate schedule is global over the rounds, so all three follow the same curve.

Prompts and scores come from forgetbench.eval.scorer (the task built by lm-eval exactly as eval builds it);
training rows never coincide with evaluation rows (same row or same prompt text: dropped, counted).
Output: a plain HF checkpoint plus forgetbench_train.json, a per-step JSONL log, the training data and
the effective recipe, written atomically (forgetbench.train.sft.staging).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import yaml

from forgetbench import paths
from forgetbench.tasks import registry
from forgetbench.argtypes import SEED
from forgetbench.tasks.data import canonical
from forgetbench.errors import UserError
from forgetbench.train.data import DATA_FILE, expert_examples, held_out, pair_examples, training_rows
from forgetbench.train.methods import METHODS
from forgetbench.train.recipe import load_recipe
from forgetbench.train.sft import LOG_FILE, RECIPE_FILE


# ---------------------------------------------------------------------------------------- runs


def with_dtype(recipe: dict) -> dict:
    """The recipe with dtype "auto" resolved for the device training runs on (printed): the resolved
    dtype is what the checkpoint's folder key, its record and its weights use."""
    from forgetbench.runtime.hardware import resolve_dtype, training_device

    choice = resolve_dtype(recipe["dtype"], training_device())
    if recipe["dtype"] == "auto":
        print(f"[train] {choice.describe()}", file=sys.stderr)
    return {**recipe, "dtype": choice.dtype}


def default_out(method: str, task: str, base_hash: str, recipe: dict, data_file: Path | None) -> Path:
    key = canonical([recipe, base_hash, str(data_file.resolve()) if data_file else None])
    return paths.home() / "runs" / f"{method}-{task}-{base_hash[:8]}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def train(recipe: dict, base: str, task: str, out: Path, *, data_file: Path | None = None,
          data_dir: Path | None = None, recipe_file: Path | None = None) -> dict:
    """Run one training job into `out` (atomically replaced); return its forgetbench_train.json record."""
    from forgetbench.runtime.versions import TRAIN_PACKAGES, package_versions
    from forgetbench.models.resolve import is_fake, resolve
    from forgetbench.train.sft import save_checkpoint, staging

    from forgetbench.runtime.hardware import configure_threads

    started, load0 = time.time(), os.getloadavg()[0]
    recipe = with_dtype(recipe) if recipe["dtype"] == "auto" else recipe
    threads = configure_threads()
    method, spec = recipe["method"], registry.get(task)
    how = METHODS[method]
    if spec.role != "target":
        print(f"[train] warning: {task} is registered as a {spec.role}, not a target", file=sys.stderr)
    ref = resolve(base, dtype=recipe["dtype"])
    if is_fake(ref):
        raise UserError(f"--base {base}: training needs a real model, not a fake-backend script")
    recipe = {**recipe, "method": method, "task": task, "base": base}
    if how.expert_data and data_file is not None:  # expert pairs from a file: no task rows, prompts as given
        examples, dropped = pair_examples(data_file, held_out(spec, data_dir)[1])
        data = {"source": f"file {data_file}", "n_candidates": len(examples) + dropped,
                "n_dropped_eval_overlap": dropped, "n_rows": len(examples)}
        scorer = None
    else:
        rows, scorer, data = training_rows(spec, recipe, data_file, data_dir)
        examples = expert_examples(spec, rows, scorer) if how.expert_data else None
    if examples is not None and not examples:
        raise UserError(f"{method}: no training examples for {task}")
    print(f"[train] {method} on {task}: {data['n_rows']} rows from {data['source']} "
          f"({data['n_dropped_eval_overlap']} evaluation rows dropped) -> {out}", file=sys.stderr)

    with staging(out) as tmp:
        log = tmp / LOG_FILE
        log.write_text("")
        model, tok, info = how.fit(Path(ref.path), recipe, tmp / "trainer", log, examples=examples, scorer=scorer)
        save_checkpoint(model, tok, tmp, recipe["dtype"])
        with open(tmp / DATA_FILE, "w") as f:
            for ex in info["examples"]:
                f.write(json.dumps(ex, ensure_ascii=False, default=str) + "\n")
        steps = [json.loads(line) for line in log.read_text().splitlines()]
        steps = [s for s in steps if "loss" in s]
        hp = {k: v for k, v in recipe.items() if k not in ("method", "task", "base")}
        record = {
            "method": method,
            "task": task,
            "base": {"spec": ref.spec, "kind": ref.kind, "path": ref.path, "content_hash": ref.content_hash},
            "seed": recipe["seed"],
            "hyperparameters": hp,
            "recipe": recipe,
            "recipe_file": str(Path(recipe_file).resolve()) if recipe_file else None,
            "training_data": _describe_data(method, task, data, info),
            "data": {**data, "rounds": info["rounds"]},
            "n_examples": len(info["examples"]),
            "steps": info["steps"],
            "final_metrics": _final_metrics(steps),
            "warnings": _no_signal(method, steps),
            "wall_seconds": round(time.time() - started, 1),
            "machine": {"cpus": os.cpu_count(), "threads": threads, "cpu": _cpu_line(),
                        "loadavg_start": round(load0, 2),
                        "loadavg_end": round(os.getloadavg()[0], 2)},
            "versions": package_versions(TRAIN_PACKAGES),
        }
        (tmp / RECIPE_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
        header = "# effective recipe of this run (forgetbench train); rerun: forgetbench train --recipe recipe.yaml\n"
        (tmp / "recipe.yaml").write_text(header + yaml.safe_dump(recipe, sort_keys=False))
        if recipe_file:
            shutil.copyfile(recipe_file, tmp / "recipe.source.yaml")
    return record


def ensure_trained(recipe: dict, base: str, out: Path, *, recipe_file: Path | None = None,
                   force: bool = False) -> tuple[dict, bool]:
    """(forgetbench_train.json record, was cached): `out`'s finished run unless `force`, else trained now."""
    if (out / RECIPE_FILE).is_file() and not force:
        return json.loads((out / RECIPE_FILE).read_text()), True
    return train(recipe, base, recipe["task"], out, recipe_file=recipe_file), False


def _describe_data(method: str, task: str, data: dict, info: dict) -> str:
    what = METHODS[method].trains_on
    kept = "".join(f"; round {r['round']}: kept {r['kept']}/{r['sampled']}" for r in info["rounds"] if "kept" in r)
    return f"{task}: {data['n_rows']} training rows from {data['source']}, {what}{kept}"


def _cpu_line() -> str:
    from forgetbench.runtime.hardware import describe

    return describe()


def _no_signal(method: str, steps: list[dict]) -> list[str]:
    """GRPO learns only from groups whose completions got different rewards; say so when none did, since
    the checkpoint is then the base model again (forward KL exactly 0), not a failed optimizer."""
    if not METHODS[method].reward or not steps or any(s.get("frac_reward_zero_std", 0.0) < 1.0 for s in steps):
        return []
    msg = (f"{method}: every group of completions got equal rewards in all {len(steps)} steps (mean reward "
           f"{sum(s.get('reward', 0.0) for s in steps) / len(steps):.3f}), so every advantage was 0 and no update "
           "reached the weights; use a task the base solves sometimes, more num_generations or more steps")
    print(f"[train] warning: {msg}", file=sys.stderr)
    return [msg]


def _final_metrics(steps: list[dict]) -> dict:
    if not steps:
        return {}
    out = {"final_loss": steps[-1]["loss"], "mean_loss": sum(s["loss"] for s in steps) / len(steps)}
    for key in ("reward", "kl", "completions/mean_length"):
        if key in steps[-1]:
            out[f"final_{key.replace('/', '_')}"] = steps[-1][key]
            out[f"first_{key.replace('/', '_')}"] = steps[0].get(key)
    return out


# ----------------------------------------------------------------------------------------- CLI


def add_arguments(p) -> None:
    p.add_argument("--method", choices=tuple(METHODS), help="training method (default: the recipe's `method`)")
    p.add_argument("--base", help="base model, any form `forgetbench eval` accepts (default: the recipe's `base`)")
    p.add_argument("--task", help="target task to train on (default: the recipe's `task`)")
    p.add_argument("--recipe", type=Path, help="YAML settings, e.g. recipes/cpu/sft.yaml (see recipes/README.md)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one recipe setting (repeatable), e.g. --set lr=5e-5 --set max_steps=20")
    p.add_argument("--seed", type=SEED, help="shorthand for --set seed=N")
    p.add_argument("--out", type=Path, help="checkpoint folder (default: $FORGETBENCH_HOME/runs/<method>-<task>-<key>)")
    p.add_argument("--data", type=Path, help="training data, JSONL: sft {prompt, response} pairs; other methods "
                   "rows in the task's schema (default: the task's training source / generator)")
    p.add_argument("--data-dir", type=Path, help="local hub data: DIR/<org>__<name>[/<config>]/<split>.jsonl")
    p.add_argument("--force", action="store_true", help="retrain even if the output folder already holds a run")


def main(args) -> int:
    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    recipe = load_recipe(args.recipe, args.method, overrides)
    base, task = args.base or recipe["base"], args.task or recipe["task"]
    if not base or not task:
        raise UserError("train needs --base MODEL and --task TARGET (or `base:` / `task:` in the recipe)")
    recipe = with_dtype({**recipe, "base": base, "task": task})
    if args.data is not None and not args.data.is_file():
        raise UserError(f"--data {args.data} is not a file")
    out = args.out
    if out is None:
        from forgetbench.models.resolve import resolve

        out = default_out(recipe["method"], task, resolve(base, dtype=recipe["dtype"]).content_hash, recipe, args.data)
    if out.exists() and not args.force:
        if (out / RECIPE_FILE).is_file() and args.out is None:
            print(f"[train] already trained: {out} (--force retrains)", file=sys.stderr)
            print(out)
            return 0
        raise UserError(f"--out {out} already exists; pass --force to replace it")
    record = train(recipe, base, task, out, data_file=args.data, data_dir=args.data_dir, recipe_file=args.recipe)
    print(f"[train] {record['steps']} steps in {record['wall_seconds']} s; {record['final_metrics']}", file=sys.stderr)
    print(out)
    return 0
