"""Bridge to lm-eval: score one model on one task's rows and return per-item results.

lm-eval does the prompting, generation, loglikelihood scoring and per-item metrics; this module only
feeds it forgetbench's rows (as a local jsonl, so the rows are exactly the hashed ones) and reads the
per-sample log back into ItemResults.
"""

from __future__ import annotations

import json
import logging
import os
import time
from functools import lru_cache
from pathlib import Path

from forgetbench import paths
from forgetbench.tasks import registry
from forgetbench.tasks.data import doc_hash, gen_key
from forgetbench.errors import UserError
from forgetbench.runtime.versions import package_versions
from forgetbench.records import Docs, EvalSettings, ItemResult, ModelRef, TaskRun, TaskSpec

log = logging.getLogger(__name__)


def generation_settings(spec: TaskSpec, settings: EvalSettings, chat_template: bool) -> dict:
    """Everything that changes a model's outputs on a task; hashed into the cache key.

    Computed from the YAML without building the lm-eval task, so a cache hit costs no model load."""
    cfg = registry.lm_eval_config(spec)
    gen = dict(cfg.get("generation_kwargs") or {})
    if settings.max_gen_toks is not None and cfg.get("output_type") == "generate_until":
        gen["max_gen_toks"] = settings.max_gen_toks
    return {
        **settings.key_fields(),
        "chat_template": chat_template,
        "output_type": cfg.get("output_type"),
        "generation_kwargs": gen,
        "num_fewshot": cfg.get("num_fewshot", 0),
    }


@lru_cache(maxsize=2)
def _task_manager(roots: tuple[str, ...]):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(roots), include_defaults=False)


def _materialize(docs: Docs) -> Path:
    """Write the rows to a content-addressed jsonl that lm-eval's `json` loader reads."""
    out = paths.home() / "data" / f"{docs.task}-{docs.data_hash[:16]}.jsonl"
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as f:
                for row in docs.rows:
                    f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            tmp.replace(out)
        except OSError as e:  # a full or read-only FORGETBENCH_HOME: name it (a write error has no file name)
            tmp.unlink(missing_ok=True)
            raise UserError(f"cannot write {out} ({e.strerror}); forgetbench keeps task data under FORGETBENCH_HOME"
                            f" ({paths.home()})") from e
    return out


def build_task(spec: TaskSpec, docs: Docs, gen_settings: dict):
    tm = _task_manager(tuple(str(d) for d in registry.tasks_dirs()))
    overrides = {
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(_materialize(docs))}},
        "custom_dataset": None,
        "test_split": "test",
        "training_split": None,
        "validation_split": None,
        "fewshot_split": None,
    }
    if gen_settings["output_type"] == "generate_until":
        overrides["generation_kwargs"] = gen_settings["generation_kwargs"]
    return tm._factory.build(tm.task_index[spec.name], overrides=overrides, registry=tm.task_index)


def _prompt(sample: dict) -> str:
    # Samples keep the request arguments as {"gen_args_0": {"arg_0": context, "arg_1": ...}, ...};
    # every request of a doc shares the context, so the first one is the prompt.
    args = sample.get("arguments")
    if isinstance(args, dict) and args:
        first = next(iter(args.values()))
        return str(first.get("arg_0", "")) if isinstance(first, dict) else str(first)
    if isinstance(args, (list, tuple)) and args:
        return str(args[0][0])
    return ""


def _response(sample: dict, doc_choices) -> str:
    resp = sample.get("filtered_resps")
    if isinstance(resp, list) and resp and isinstance(resp[0], (list, tuple)):
        # multiple choice: (loglikelihood, is_greedy) per choice; show the chosen choice
        lls = [r[0] for r in resp]
        best = max(range(len(lls)), key=lls.__getitem__)
        label = doc_choices[best] if doc_choices and best < len(doc_choices) else str(best)
        return f"[{best}] {label}"
    if isinstance(resp, list):
        return "" if not resp else str(resp[0])
    return "" if resp is None else str(resp)


def _metric_values(sample: dict, names) -> dict[str, float]:
    out: dict[str, float] = {}
    filt = sample.get("filter", "none")
    for name in names:
        if name not in sample:
            continue
        value = sample[name]
        key = f"{name},{filt}"
        if isinstance(value, (list, tuple)):  # ifeval inst_level_*: one bool per instruction
            out[key] = sum(map(float, value)) / len(value) if value else 0.0
            out[key + "__n"] = float(len(value))
        else:
            out[key] = float(value)
    return out


def primary_key(metric: str) -> str:
    return metric if "," in metric else f"{metric},none"


def score_task(
    lm, model: ModelRef, spec: TaskSpec, docs: Docs, settings: EvalSettings, chat_template: bool,
    confirm_unsafe_code: bool = False,
) -> TaskRun:
    """lm-eval scores `docs`; a task that runs generated code (spec.unsafe_code) needs
    confirm_unsafe_code, which also opens forgetbench's sandbox for this call only."""
    from lm_eval import evaluator

    from forgetbench.eval.backends import seed_everything
    from forgetbench.errors import UserError
    from forgetbench.tasks.scoring import sandbox

    gen = generation_settings(spec, settings, chat_template)
    task = build_task(spec, docs, gen)
    metric_names = [m["metric"] for m in (task.config.metric_list or [])]
    started = time.time()
    seed_everything(settings.seed)
    if task.get_config("num_fewshot") is None:
        task.set_config(key="num_fewshot", value=0)
    task.set_fewshot_seed(seed=settings.seed)
    # evaluate() rather than simple_evaluate(): the latter re-indexes lm-eval's built-in tasks and
    # shells out to `pip list` for environment info on every call (~3 s per task and model); we record
    # our own provenance below.
    if spec.unsafe_code and not confirm_unsafe_code:
        raise UserError(sandbox.not_confirmed_message(spec.name))
    with sandbox.opened(spec.unsafe_code and confirm_unsafe_code):
        results = evaluator.evaluate(
            lm=lm,
            task_dict={"tasks": {spec.name: task}, "groups": {}, "group_map": {}},
            log_samples=True,
            apply_chat_template=chat_template,
            fewshot_as_multiturn=True,
            bootstrap_iters=0,
            confirm_run_unsafe_code=confirm_unsafe_code,
        )
    samples = results["samples"][spec.name]
    by_doc: dict[int, list[dict]] = {}
    for s in samples:
        by_doc.setdefault(int(s["doc_id"]), []).append(s)
    if len(by_doc) != len(docs.rows):
        raise RuntimeError(f"{spec.name}: lm-eval scored {len(by_doc)} of {len(docs.rows)} rows")
    key = primary_key(spec.primary_metric)
    items = []
    for doc_id in sorted(by_doc):
        group = by_doc[doc_id]
        metrics: dict[str, float] = {}
        for s in group:
            metrics.update(_metric_values(s, metric_names))
        if key not in metrics:
            raise RuntimeError(f"{spec.name}: lm-eval produced no {key!r} (got {sorted(metrics)})")
        doc = group[0].get("doc") or {}
        choices = doc.get("choices") if isinstance(doc, dict) else None
        items.append(
            ItemResult(
                doc_id=doc_id,
                doc_hash=doc_hash(docs.rows[doc_id]),
                prompt=_prompt(group[0]),
                response=_response(group[0], choices if isinstance(choices, list) else None),
                score=metrics[key],
                metrics=metrics,
                cluster=docs.clusters[doc_id] if docs.clusters else None,
                stratum=docs.strata[doc_id] if docs.strata else None,
            )
        )
    provenance = {
        "versions": package_versions(),
        "seed": settings.seed,
        "backend": settings.backend,
        "device": settings.device,
        "batch_size": settings.batch_size,
        "seconds": round(time.time() - started, 2),
        "sources": list(docs.sources),
        "model_spec": model.spec,
    }
    return TaskRun(
        model_hash=model.content_hash,
        task=spec.name,
        task_version=spec.version,
        data_hash=docs.data_hash,
        gen_key=gen_key(gen),
        gen_settings=gen,
        items=tuple(items),
        provenance=provenance,
    )
