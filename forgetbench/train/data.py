"""Training rows for a target task: its declared training sources (or a --data file), never an evaluation
row or prompt (dropped and counted), and the expert responses SFT learns from."""

from __future__ import annotations

import random
from pathlib import Path

from forgetbench.errors import UserError
from forgetbench.tasks.data import canonical, load_docs, load_ref, read_jsonl, read_source


DATA_FILE = "forgetbench_train_data.jsonl"


def held_out(spec, data_dir: Path | None) -> tuple[set[str], set[str]]:
    """(canonical rows, prompt texts) of the task's full evaluation rows: training must avoid both."""
    from forgetbench.eval.scorer import load_scorer

    rows = list(load_docs(spec, data_dir=data_dir).rows)
    scorer = load_scorer(spec, rows)
    return {canonical(r) for r in rows}, {scorer.prompt_text(d) for d in scorer.docs}


def candidate_rows(spec, recipe: dict, data_file: Path | None, data_dir: Path | None) -> tuple[list[dict], str]:
    """Training rows in the task's own schema, before the held-out filter, and where they came from."""
    n, seed = recipe["n_train"], recipe["data_seed"]
    if data_file is not None:
        return read_jsonl(data_file), f"file {data_file}"
    if spec.train_sources:  # the task's metadata.forgetbench.train_sources: disjoint from its eval rows
        rows = [r for src in spec.train_sources for r in read_source(src, data_dir)]
        where = "; ".join(src.describe() for src in spec.train_sources)
        return random.Random(seed).sample(rows, min(len(rows), 2 * n)), f"{where} (seeded sample, seed {seed})"
    (src,) = spec.sources if len(spec.sources) == 1 else (None,)
    if src is None or not src.generator:
        raise UserError(f"{spec.name} has no training split forgetbench knows; pass --data FILE.jsonl with rows "
                        "in the task's schema (sft: {\"prompt\", \"response\"} pairs)")
    # Generated targets: same generator, another seed; 2n + |eval| candidates leave room for the filter.
    rows = load_ref(src.generator)(n=2 * n + (src.n or 0), seed=seed)
    return rows, f"{src.generator}(seed={seed})"


def training_rows(spec, recipe: dict, data_file: Path | None, data_dir: Path | None) -> tuple[list[dict], object, dict]:
    """(rows, their TaskScorer, provenance): candidates minus evaluation rows, the first n_train of them."""
    from dataclasses import replace

    from forgetbench.eval.scorer import load_scorer

    rows, source = candidate_rows(spec, recipe, data_file, data_dir)
    eval_rows, eval_prompts = held_out(spec, data_dir)
    scorer = load_scorer(spec, rows)
    keep = [i for i, (r, d) in enumerate(zip(rows, scorer.docs)) if canonical(r) not in eval_rows
            and scorer.prompt_text(d) not in eval_prompts]
    dropped = len(rows) - len(keep)
    keep = keep if data_file is not None else keep[: recipe["n_train"]]
    if not keep:
        raise UserError(f"{spec.name}: no training rows left after removing the {dropped} that are evaluation rows")
    info = {"source": source, "n_candidates": len(rows), "n_dropped_eval_overlap": dropped, "n_rows": len(keep)}
    return [rows[i] for i in keep], replace(scorer, docs=tuple(scorer.docs[i] for i in keep)), info


def expert_examples(spec, rows: list[dict], scorer) -> list[dict]:
    if not spec.expert:  # the task's metadata.forgetbench.expert
        raise UserError(f"{spec.name} has no expert responses; pass --data FILE.jsonl with "
                        "{\"prompt\", \"response\"} pairs")
    expert = load_ref(spec.expert)
    out = []
    for row, doc in zip(rows, scorer.docs):
        try:
            out.append({"prompt": scorer.messages(doc), "completion": expert(row)})
        except ValueError:  # e.g. a countdown row the solver cannot solve: no expert answer to show
            pass
    return out


def pair_examples(data_file: Path, eval_prompts: set[str]) -> tuple[list[dict], int]:
    """{"prompt", "response"} pairs from --data (string prompts, one user turn), minus eval prompts."""
    rows = read_jsonl(data_file)
    if any(not isinstance(r.get("prompt"), str) or not isinstance(r.get("response", r.get("completion")), str)
           for r in rows):
        raise UserError(f"--data {data_file}: every row needs string 'prompt' and 'response' fields")
    held = {p.strip() for p in eval_prompts}
    keep = [{"prompt": r["prompt"], "completion": r.get("response", r.get("completion"))} for r in rows
            if r["prompt"].strip() not in held]
    return keep, len(rows) - len(keep)
