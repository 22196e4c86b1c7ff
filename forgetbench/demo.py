"""`forgetbench demo`: the whole measurement on the bundled model, offline, in a few minutes.

1. materialize the bundled SmolLM2-135M-Instruct (GGUF -> cached safetensors directory);
2. fine-tune it briefly (SFT) on generated lite-countdown problems with solver-written answers,
   on a seed disjoint from the evaluation rows; cached, so a second demo skips it;
3. `forgetbench eval` base vs tuned on the lite suite with lite_countdown as the target;
4. print the table.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from . import paths, registry
from .data import canonical, load_docs

TRAIN_SEED = 20251  # the lite_countdown eval rows use the registry's seed; training uses this one
TRAIN_ROWS = 160


def training_examples(target: str = "lite_countdown") -> list[dict]:
    from .lite import countdown
    from .scoring.countdown import prompt

    held_out = {canonical(r) for r in load_docs(registry.get(target)).rows}
    rows = [r for r in countdown.generate(n=TRAIN_ROWS * 2, seed=TRAIN_SEED) if canonical(r) not in held_out]
    return [{"prompt": prompt(r["nums"], r["target"]), "completion": countdown.expert_response(r)} for r in rows[:TRAIN_ROWS]]


def tuned_checkpoint(base_path: str, base_hash: str, force: bool = False) -> Path:
    from .sft import DEMO_RECIPE, sft

    examples = training_examples()
    recipe_key = hashlib.sha256(canonical([DEMO_RECIPE, examples]).encode()).hexdigest()[:10]
    out = paths.home() / "models" / f"demo-sft-{base_hash[:12]}-{recipe_key}"
    if out.is_dir() and not force:
        print(f"[demo] tuned checkpoint cached: {out}", file=sys.stderr)
        return out
    print(f"[demo] SFT on {len(examples)} lite-countdown examples -> {out}", file=sys.stderr)
    return Path(sft(base_path, examples, out, **DEMO_RECIPE))


def run_demo(db: Path, force: bool = False) -> int:
    from .models import resolve
    from .pair import EvalRequest, evaluate_pair
    from .report import render_table

    t0 = time.time()
    base = resolve("smollm2-135m-instruct")
    tuned_dir = tuned_checkpoint(base.path, base.content_hash, force=force)
    t_train = time.time() - t0
    report = evaluate_pair(EvalRequest(base=base.spec, tuned=str(tuned_dir), suite="lite",
                                       target="lite_countdown", db=db))
    print(render_table(report))
    summary = {"db": str(db), "tuned": str(tuned_dir), "seconds_total": round(time.time() - t0, 1),
               "seconds_until_eval": round(t_train, 1)}
    print(f"\n[demo] done in {summary['seconds_total']} s; results stored in {db}\n{json.dumps(summary)}")
    return 0
