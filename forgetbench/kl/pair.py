"""Forward KL(pi0 || pi) of a pair on its target task's prompts, with base samples kept in the store.

The prompts are the exact contexts the base model was scored on (stored with its run, chat template
applied), M of them chosen by a seeded stratified sample. The base's K completions per prompt are a
"sample set" stored once per (base, task rows, KL settings) and reused for every tuned model of that
base; per-completion KL values are stored per tuned model, so a rerun recomputes nothing.
The estimator itself is forgetbench.kl.estimate (exact per-token KL over the vocabulary along base samples).
"""

from __future__ import annotations

import gc
import hashlib
import sys
from dataclasses import asdict, replace

from forgetbench.tasks.data import canonical, stratified_sample
from forgetbench.kl.estimate import BaseSamples, KLItems, KLSettings, summarize, SHORT_NAMES
from forgetbench.records import ModelRef, TaskRun, TaskSpec
from forgetbench.stats import KL_BOOT_SEED, KL_N_BOOT
from forgetbench.store import Store
from forgetbench.store.rows import KLItem, KLSample

N_BOOT, BOOT_SEED = KL_N_BOOT, KL_BOOT_SEED  # the KL percentile bootstrap (why a bootstrap: forgetbench.stats)
# summarize() names -> the store's pair_kl column stems
_RESULT_FIELDS = ("m_prompts", "k_samples", "max_new_tokens", "seed", "dtype")


def task_max_tokens(run: TaskRun, default: int = 256) -> int:
    """The task's generation length (lm-eval's default 256 when the task sets none, e.g. MC tasks)."""
    gen = run.gen_settings.get("generation_kwargs") or {}
    return int(gen.get("max_gen_toks") or default)


def choose_prompts(run: TaskRun, m: int, seed: int) -> list[int]:
    """Indices into run.items: a seeded sample of m items, stratified by cluster like --limit."""
    keys = [str(i.cluster or i.stratum or "") for i in run.items]
    return stratified_sample(keys, m, seed) if m < len(keys) else list(range(len(keys)))


def sample_set_id(base: ModelRef, run: TaskRun, settings: KLSettings, doc_ids: list[int]) -> str:
    key = {"base": base.content_hash, "task": run.task, "version": run.task_version, "data": run.data_hash,
           "gen_key": run.gen_key, "docs": doc_ids, **{f: getattr(settings, f) for f in _RESULT_FIELDS}}
    return hashlib.sha256(canonical(key).encode()).hexdigest()[:24]


def _load_samples(store: Store, sid: str, settings: KLSettings, base_hash: str) -> BaseSamples | None:
    rows = store.kl_samples(sid)
    if not rows:
        return None
    prompts: dict[int, tuple[int, ...]] = {}
    for r in rows:
        prompts.setdefault(r.prompt_index, r.prompt_ids)
    return BaseSamples(prompt_ids=tuple(prompts[i] for i in sorted(prompts)),
                       completions=tuple(r.completion_ids for r in rows),
                       prompt_index=tuple(r.prompt_index for r in rows), settings=settings, base_hash=base_hash)


def _save_samples(store: Store, sid: str, run: TaskRun, samples: BaseSamples, doc_ids: list[int]) -> None:
    rows = [KLSample(seq, pi, doc_ids[pi], tuple(samples.prompt_ids[pi]), tuple(c))
            for seq, (pi, c) in enumerate(zip(samples.prompt_index, samples.completions))]
    store.put_kl_samples(sid, samples.base_hash, run.task, run.data_hash, asdict(samples.settings), rows)


def _load_items(store: Store, sid: str, tuned_hash: str) -> KLItems | None:
    rows = store.kl_items(sid, tuned_hash)
    if not rows:
        return None
    return KLItems(fwd=tuple(r.fwd for r in rows), rev=tuple(r.rev for r in rows), tv=tuple(r.tv for r in rows),
                   n_tokens=tuple(r.n_tokens for r in rows), prompt_index=tuple(r.prompt_index for r in rows))


def _save_items(store: Store, sid: str, tuned_hash: str, items: KLItems) -> None:
    store.put_kl_items(sid, tuned_hash, [
        KLItem(seq, pi, n, f, r, t)
        for seq, (pi, n, f, r, t) in enumerate(zip(items.prompt_index, items.n_tokens, items.fwd, items.rev, items.tv))])


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pair_kl(store: Store, base: ModelRef, tuned: ModelRef, spec: TaskSpec, base_run: TaskRun,
            settings: KLSettings, device: str = "cpu", backend: str = "hf", vllm_args: dict | None = None) -> dict:
    """KL estimates of `tuned` from `base` on the target's prompts (computed or read from the store).

    backend "vllm": base samples come from a vLLM engine built with `vllm_args` (the scoring engines'
    settings: tensor/data parallel sizes, memory share, max model length), stopped before the HF models of
    the KL pass load, so at most one copy of a model is in memory at a time."""
    from forgetbench.kl import estimate as kl, sample as kl_sample

    if settings.max_new_tokens <= 0:
        settings = replace(settings, max_new_tokens=task_max_tokens(base_run))
    chosen = choose_prompts(base_run, settings.m_prompts, settings.seed)
    settings = replace(settings, m_prompts=len(chosen))
    doc_ids = [base_run.items[i].doc_id for i in chosen]
    sid = sample_set_id(base, base_run, settings, doc_ids)
    samples = _load_samples(store, sid, settings, base.content_hash)
    items = _load_items(store, sid, tuned.content_hash) if samples else None
    if items is None:
        base_model = base_tok = None
        if samples is None:
            prompts = [base_run.items[i].prompt for i in chosen]
            _say(f"[kl] sampling {len(prompts)} x {settings.k_samples} base completions on {spec.name} "
                 f"(<= {settings.max_new_tokens} tokens, {backend})")
            if backend == "vllm":  # the engine is stopped inside, before any HF model loads
                samples = kl_sample.sample_base_vllm(base.path, prompts, settings, base.content_hash,
                                                     **(vllm_args or {}))
            else:
                base_model, base_tok = kl.load(base.path, settings.dtype, device)
                samples = kl_sample.sample_base(base_model, base_tok, prompts, settings, base.content_hash)
            _save_samples(store, sid, base_run, samples, doc_ids)
        else:
            _say(f"[kl] base samples cached ({len(samples.completions)} sequences)")
        if base_model is None:
            base_model, base_tok = kl.load(base.path, settings.dtype, device)
        tuned_model, tuned_tok = kl.load(tuned.path, settings.dtype, device)
        kl.check_compatible(base_tok, tuned_tok, base_model, tuned_model)
        _say(f"[kl] exact KL along {len(samples.completions)} base samples")
        items = kl.kl_along(base_model, tuned_model, samples, settings)
        _save_items(store, sid, tuned.content_hash, items)
        del base_model, tuned_model
        gc.collect()
    else:
        _say("[kl] cached")
    est = summarize(items, n_boot=N_BOOT, seed=BOOT_SEED)
    return {
        "task": spec.name,
        "settings": {**{f: getattr(settings, f) for f in _RESULT_FIELDS}, "sample_set": sid,
                     "n_boot": N_BOOT, "boot_seed": BOOT_SEED, "doc_ids": doc_ids},
        "n_seq": len(items.fwd),
        "n_tokens": int(sum(items.n_tokens)),
        **{SHORT_NAMES[k]: {"value": e.value, "lo": e.lo, "hi": e.hi} for k, e in est.items()},
    }


def kl_settings_from(eval_settings, m: int, k: int, max_tokens: int | None, seed: int | None) -> KLSettings:
    return KLSettings(m_prompts=m, k_samples=k, max_new_tokens=max_tokens or 0,
                      seed=eval_settings.seed if seed is None else seed, dtype=eval_settings.dtype,
                      batch_size=max(1, eval_settings.batch_size))
