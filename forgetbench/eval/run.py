"""`forgetbench eval BASE TUNED`: score both models on the chosen tasks, reusing stored runs, and
compare them item by item.

Order of work: resolve both models (hash only, no weights loaded) -> load every task's rows ->
for each model, find the (task, data, settings) runs the store lacks -> load that model once and
score only those, committing each task as it finishes -> pair statistics -> store the pair.
A second tuned model against the same base therefore never re-runs the base, and a rerun after an
interruption redoes no finished task.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from forgetbench.tasks import data, registry
from forgetbench.eval import lmeval
from forgetbench.errors import UserError
from forgetbench.paths import default_db
from forgetbench.runtime.versions import package_versions
from forgetbench.records import Docs, EvalSettings, ModelRef, PairReport, TaskSpec
from forgetbench.store import Store, run_id

log = logging.getLogger(__name__)

_MISMATCHED = "mismatched inputs: a fake-backend model can only be compared with another fake model"


@dataclass(frozen=True)
class EvalRequest:
    base: str
    tuned: str
    suite: str = "core"
    tasks: tuple[str, ...] = ()
    target: str | None = None
    limit: int | None = None
    data_dir: Path | None = None
    db: Path = field(default_factory=default_db)
    settings: EvalSettings = field(default_factory=EvalSettings)
    kl: bool = True  # forward KL on the target's prompts (needs --target and a real backend)
    kl_prompts: int = 32
    kl_samples: int = 4
    kl_max_tokens: int | None = None  # default: the target task's generation length
    confirm_unsafe_code: bool = False  # tasks that run generated code (humaneval*) may run, sandboxed
    target_prompts: Path | None = None  # KL on the user's own prompts instead of a target task


def select_tasks(suite: str, names: tuple[str, ...], target: str | None) -> list[TaskSpec]:
    specs = [registry.get(n) for n in names] if names else registry.suite(suite)
    if target is not None:
        t = registry.get(target)
        if t.role != "target":
            raise UserError(f"--target {target}: that task is a {t.role}, not a target task")
        if t.name not in {s.name for s in specs}:
            specs.append(t)
    return specs


def role_in_pair(spec: TaskSpec, target: str | None) -> str:
    """With --target T, the other targets count as probes (they are old skills for this model)."""
    if target is not None and spec.role == "target" and spec.name != target:
        return "probe"
    return spec.role


def resolved_dtype(settings: EvalSettings) -> EvalSettings:
    """`settings` with device "auto" (a CUDA GPU if any, else cpu), dtype "auto" (what the hardware computes
    fast) and vLLM's memory share decided for this machine (printed once)."""
    from forgetbench.eval.backends import backend, resolved

    if backend(settings.backend).scripted:  # scripted outputs: no arithmetic, nothing to choose
        return settings
    from forgetbench.runtime.hardware import resolve_device, resolve_dtype

    device = resolve_device(settings.device)
    choice = resolve_dtype(settings.dtype, device)
    _say(f"[eval] device {device}; {choice.describe()}")
    return resolved(replace(settings, device=device, dtype=choice.dtype))


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check_unsafe(specs, confirmed: bool) -> None:
    """Refuse, before any model work, tasks that run generated code without the explicit opt-in."""
    unsafe = [s.name for s in specs if s.unsafe_code]
    if unsafe and not confirmed:
        from forgetbench.tasks.scoring.sandbox import not_confirmed_message

        raise UserError(not_confirmed_message(", ".join(unsafe)))


def ensure_runs(store: Store, model: ModelRef, label: str, specs, docs: dict[str, Docs],
                settings: EvalSettings, confirm_unsafe_code: bool = False) -> dict[str, str]:
    """Run id per task for `model`, scoring (and committing) only the tasks the store lacks."""
    from forgetbench.eval.backends import build_lm, chat_template_enabled, release

    chat = chat_template_enabled(model, settings)
    ids, todo = {}, []
    for spec in specs:
        gen = lmeval.generation_settings(spec, settings, chat)
        rid = run_id(model.content_hash, spec.name, spec.version, docs[spec.name].data_hash, data.gen_key(gen))
        ids[spec.name] = rid
        if store.has_run(rid):
            _say(f"[{label}] {spec.name}: cached ({len(docs[spec.name].rows)} items)")
        else:
            todo.append(spec)
    if not todo:
        return ids
    from forgetbench.eval.workers import score_in_workers, worker_count

    def stored(spec, run, seconds):
        store.put_run(run)
        _say(f"[{label}] {spec.name}: done in {seconds:.0f} s")

    n = worker_count(settings, model, len(todo))
    if n > 1:
        _say(f"[{label}] {len(todo)} task(s) of {model.spec} ({model.short}) in {n} single-thread worker processes")
        left = {s.name for s in score_in_workers(n, model, [(s, docs[s.name]) for s in todo], settings, chat,
                                                 confirm_unsafe_code, stored)}
        todo = [s for s in todo if s.name in left]
        if not todo:
            return ids
    _say(f"[{label}] loading {model.spec} ({model.short}) for {len(todo)} task(s)")
    lm = build_lm(model, settings)
    try:
        for spec in todo:
            _say(f"[{label}] {spec.name}: scoring {len(docs[spec.name].rows)} items")
            started = time.time()
            stored(spec, lmeval.score_task(lm, model, spec, docs[spec.name], settings, chat, confirm_unsafe_code),
                   time.time() - started)
    finally:
        release(lm)  # a vLLM engine stops now: the next model (or the KL sampler) gets its memory
        del lm
        gc.collect()
    return ids


def evaluate_pair(req: EvalRequest) -> PairReport:
    from forgetbench.stats.paired import pair_report
    from forgetbench.models.resolve import is_fake, resolve

    prompt_set = None
    if req.target_prompts is not None:
        from forgetbench.tasks import target_prompts

        if req.target is not None:
            raise UserError("--target and --target-prompts exclude each other: KL is measured on one of them")
        prompt_set = target_prompts.load(req.target_prompts)
    specs = select_tasks(req.suite, req.tasks, req.target)
    check_unsafe(specs, req.confirm_unsafe_code)
    # with a prompt set the pair's target is the set's name: every registry task is then a probe
    target = prompt_set.name if prompt_set else req.target
    # The models' arguments checked (cheaply), every row of every task read and checked, and the store
    # opened, before any model is resolved (hashing, conversion) or loaded: bad input costs seconds.
    from forgetbench.models.resolve import precheck

    precheck(req.base)
    precheck(req.tuned)
    if is_fake(req.base) != is_fake(req.tuned):  # decided by the spec: no store yet
        raise UserError(_MISMATCHED)
    docs = data.load_all(specs, data_dir=req.data_dir, limit=req.limit, seed=req.settings.seed)
    Store(req.db).close()
    base = resolve(req.base, dtype=req.settings.dtype)
    tuned = resolve(req.tuned, dtype=req.settings.dtype)
    if is_fake(base) != is_fake(tuned):
        raise UserError(_MISMATCHED)
    from forgetbench.eval.backends import backend, scripted_backend

    settings = req.settings
    if is_fake(base) and not backend(settings.backend).scripted:
        settings = EvalSettings(**{**settings.__dict__, "backend": scripted_backend()})
    settings = resolved_dtype(settings)
    with Store(req.db) as store:
        store.put_model(base)
        store.put_model(tuned)
        base_ids = ensure_runs(store, base, "base", specs, docs, settings, req.confirm_unsafe_code)
        tuned_ids = ensure_runs(store, tuned, "tuned", specs, docs, settings, req.confirm_unsafe_code)
        runs = {
            s.name: (s, role_in_pair(s, target), store.get_run(base_ids[s.name]), store.get_run(tuned_ids[s.name]))
            for s in specs
        }
        pair_settings = {
            **settings.__dict__,
            "suite": None if req.tasks else req.suite,
            "tasks": [s.name for s in specs],
            "limit": req.limit,
            "data_dir": str(req.data_dir) if req.data_dir else None,
            "run_ids": sorted([*base_ids.values(), *tuned_ids.values()]),
            "versions": package_versions(),
        }
        skipped = _kl_skipped(req, settings)
        if skipped:
            pair_settings["kl_skipped"] = skipped
        if prompt_set:
            pair_settings["target_prompts"] = target_prompts.describe(prompt_set)
        report = pair_report(base, tuned, target, runs, pair_settings)
        if not skipped:
            from forgetbench.kl.pair import kl_settings_from, pair_kl

            if prompt_set:
                from forgetbench.eval.backends import chat_template_enabled

                chat = chat_template_enabled(base, settings)
                spec, base_run = target_prompts.spec_and_run(prompt_set, base, target_prompts.render(
                    prompt_set, base, chat), chat, req.kl_max_tokens)
            else:
                spec, _, base_run, _ = runs[req.target]
            kls = kl_settings_from(settings, req.kl_prompts, req.kl_samples, req.kl_max_tokens, None)
            report = replace(report, kl=pair_kl(store, base, tuned, spec, base_run, kls, settings.device,
                                                backend(settings.backend).kl_sampler, vllm_sampler_args(settings)))
        from forgetbench.eval.report import to_json
        from forgetbench.store import pair_id

        report = replace(report, pair_id=pair_id(report))
        store.put_pair(report, to_json(report))  # with its tasks and KL, in one transaction
    return report


def vllm_sampler_args(settings: EvalSettings) -> dict:
    """What the KL sampler's vLLM engine(s) get: the scoring engines' settings (dtype and seed come from
    the KL settings, which copy them)."""
    from forgetbench.eval.backends import backend, vllm_engine_args

    if not backend(settings.backend).vllm_engines:
        return {}

    args = {k: v for k, v in vllm_engine_args(settings).items() if k not in ("dtype", "seed")}
    return {**args, "data_parallel_size": settings.data_parallel_size}


def _kl_skipped(req: EvalRequest, settings: EvalSettings) -> str | None:
    """Why forward KL is not computed for this request, or None when it is."""
    if not req.kl:
        return "--no-kl"
    if req.target is None and req.target_prompts is None:
        return "no --target: KL is measured on the target task's prompts (or --target-prompts)"
    from forgetbench.eval.backends import backend

    if backend(settings.backend).kl_sampler is None:
        return f"the {settings.backend} backend has no token distributions"
    return None
