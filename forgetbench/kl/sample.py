"""Draw the base-model completions the KL estimator (forgetbench.kl.estimate) is computed along.

The estimator is unbiased only if completions come from the base model's *raw* distribution:
temperature 1, no top-k/top-p/min-p, no repetition penalty, nothing from the checkpoint's
generation_config.json (which often sets top_k/top_p/temperature). transformers fills every field
left None in a passed GenerationConfig from `model.generation_config` and then from global
defaults (top_k=50!), so the HF path sets every sampling field explicitly *and* swaps in a blank
model.generation_config for the duration of the call.

Prompts are text already rendered with the chat template (the exact context lm-eval sent):
tokenized with add_special_tokens=False. Stop tokens: the tokenizer's EOS plus the checkpoint's
generation_config eos_token_id list (what HF and vLLM stop on); the EOS is kept in the completion
because its probability is part of the sequence distribution.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from pathlib import Path

from forgetbench.errors import UserError
from forgetbench.kl.estimate import BaseSamples, KLSettings, eval_mode
from forgetbench.runtime.progress import bar


def tokenize_prompts(tokenizer, prompts: list[str]) -> tuple[tuple[int, ...], ...]:
    out = tuple(tuple(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    for i, ids in enumerate(out):
        if not ids:
            raise UserError(f"prompt {i} tokenizes to nothing; the first completion token has no context")
    return out


def _as_list(x) -> list[int]:
    if x is None:
        return []
    return [int(v) for v in (x if isinstance(x, (list, tuple)) else [x])]


def eos_ids(tokenizer, generation_eos=None) -> tuple[int, ...]:
    ids = _as_list(tokenizer.eos_token_id) + _as_list(generation_eos)
    ids = tuple(dict.fromkeys(ids))  # ordered, unique
    if not ids:
        raise UserError(f"{tokenizer.name_or_path}: tokenizer has no EOS token; cannot tell where a sample ends")
    return ids


def cut_at_eos(tokens, eos: tuple[int, ...]) -> tuple[int, ...]:
    """The completion up to and including its first EOS (everything if it never stopped)."""
    out = []
    for t in tokens:
        out.append(int(t))
        if t in eos:
            break
    return tuple(out)


def _jobs(n_prompts: int, k: int) -> list[int]:
    return [m for m in range(n_prompts) for _ in range(k)]  # prompt-major: index = m * K + k


def clean_generation_config(settings: KLSettings, eos: tuple[int, ...], pad: int):
    """Pure ancestral sampling: every field that could reshape the distribution set to neutral."""
    from transformers import GenerationConfig

    return GenerationConfig(
        do_sample=True,
        num_beams=1,
        temperature=1.0,
        top_k=0,  # 0 disables (None would be filled with the global default 50)
        top_p=1.0,
        typical_p=1.0,
        epsilon_cutoff=0.0,
        eta_cutoff=0.0,
        repetition_penalty=1.0,
        encoder_repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        min_new_tokens=0,  # (min_length is then ignored; setting both only earns a warning)
        max_new_tokens=settings.max_new_tokens,
        eos_token_id=list(eos),
        pad_token_id=pad,
        num_return_sequences=1,
        use_cache=True,
        renormalize_logits=False,
        remove_invalid_values=False,
    )


@contextlib.contextmanager
def _blank_model_generation_config(model):
    from transformers import GenerationConfig

    saved = model.generation_config
    model.generation_config = GenerationConfig()
    try:
        yield
    finally:
        model.generation_config = saved


def sample_base(model, tokenizer, prompts: list[str], settings: KLSettings, base_hash: str) -> BaseSamples:
    """K completions per prompt from an HF model, batched with left padding.

    Deterministic for (seed, batch_size, device, dtype): the global torch RNG is forked and seeded
    for the call, so the caller's RNG state is untouched.
    """
    import torch

    prompt_ids = tokenize_prompts(tokenizer, prompts)
    eos = eos_ids(tokenizer, getattr(model.generation_config, "eos_token_id", None))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    config = clean_generation_config(settings, eos, pad)
    jobs = _jobs(len(prompt_ids), settings.k_samples)
    completions: list[tuple[int, ...]] = []
    dev = model.device
    fork = (
        torch.random.fork_rng(devices=[])  # CPU generator only
        if dev.type == "cpu"
        else torch.random.fork_rng(devices=[dev.index or 0], device_type=dev.type)
    )
    with (
        eval_mode(model),
        _blank_model_generation_config(model),
        fork,
        torch.inference_mode(),
    ):
        torch.manual_seed(settings.seed)
        for s in bar(range(0, len(jobs), settings.batch_size), desc="kl: sampling base", unit="batch"):
            batch = [prompt_ids[m] for m in jobs[s : s + settings.batch_size]]
            width = max(map(len, batch))
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for b, p in enumerate(batch):  # left padding: every row's next token is at the end
                ids[b, width - len(p) :] = torch.tensor(p)
                mask[b, width - len(p) :] = 1
            out = model.generate(
                input_ids=ids.to(model.device), attention_mask=mask.to(model.device), generation_config=config
            )
            # A row without EOS ran the full max_new_tokens, so every token after the prompt is
            # generated (a sampled pad id is a real token); rows that stopped are padded after EOS.
            completions += [cut_at_eos(row.tolist(), eos) for row in out[:, width:]]
    return BaseSamples(
        prompt_ids=prompt_ids,
        completions=tuple(completions),
        prompt_index=tuple(jobs),
        settings=settings,
        base_hash=base_hash,
        eos_ids=eos,
        backend="hf",
    )


# ------------------------------------------------------------------------------ vLLM


def _generate(vllm, llm_args: dict, requests: list, params: list) -> list:
    """One engine: start, generate, stop (its memory is free again when this returns)."""
    from forgetbench.runtime.vllm_support import shutdown_vllm

    llm = vllm.LLM(**llm_args)
    try:
        return llm.generate(requests, params, use_tqdm=False)
    finally:
        shutdown_vllm(llm)


def _replica(llm_args: dict, requests: list, params: list) -> list:
    """One data-parallel replica, run inside a Ray worker process."""
    from forgetbench.runtime.vllm_support import vllm_module

    return _generate(vllm_module(), llm_args, requests, params)


def _generate_data_parallel(llm_args: dict, requests: list, params: list, dp: int) -> list:
    """Prompts dealt round-robin to `dp` engines in Ray tasks (num_gpus = tensor_parallel_size each)."""
    try:
        import ray
    except ImportError as e:
        raise UserError("--data-parallel-size > 1 runs vLLM replicas through Ray: `pip install ray`") from e
    shares = [s for s in (list(range(i, len(requests), dp)) for i in range(dp)) if s]
    task = ray.remote(num_gpus=llm_args.get("tensor_parallel_size", 1))(_replica)
    refs = [task.remote(llm_args, [requests[j] for j in s], [params[j] for j in s]) for s in shares]
    try:
        results = ray.get(refs)
    finally:
        ray.shutdown()  # lm-eval does the same after each data-parallel call: a later call starts afresh
    outs: list = [None] * len(requests)
    for share, res in zip(shares, results):
        for j, o in zip(share, res):
            outs[j] = o
    return outs


def prompt_seed(seed: int, m: int) -> int:
    """Per-prompt seed: vLLM seeds each request, and identical seeds would couple prompts' draws."""
    return zlib.crc32(f"{seed}:{m}".encode())


def vllm_sampling_params(sampling_params_cls, settings: KLSettings, eos: tuple[int, ...], seed: int):
    """The vLLM SamplingParams equivalent of clean_generation_config (n = K completions)."""
    return sampling_params_cls(
        n=settings.k_samples,
        temperature=1.0,
        top_p=1.0,
        top_k=-1,  # disables top-k in every vLLM >= 0.8 (newer versions also accept 0)
        min_p=0.0,
        repetition_penalty=1.0,
        presence_penalty=0.0,
        frequency_penalty=0.0,
        max_tokens=settings.max_new_tokens,
        min_tokens=0,
        seed=seed,
        stop_token_ids=list(eos),
        ignore_eos=False,
        detokenize=False,  # ids are all we need
    )


def _generation_eos(model_path: str):
    f = Path(model_path) / "generation_config.json"
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text()).get("eos_token_id")
    except ValueError:
        return None


def sample_base_vllm(
    model_path: str, prompts: list[str], settings: KLSettings, base_hash: str, **vllm_kwargs
) -> BaseSamples:
    """K completions per prompt with vLLM. vllm_kwargs go to every vllm.LLM (tensor_parallel_size,
    gpu_memory_utilization, max_model_len, ...), except data_parallel_size: with N > 1 the prompts are dealt
    to N engines run as Ray tasks, each reserving tensor_parallel_size GPUs, as lm-eval's vLLM model
    does (each prompt has its own seed, so the samples do not depend on N). dtype and seed are the KL
    settings'. Every engine is stopped before this returns. Prompts are passed as token ids,
    tokenized like the HF path."""
    from transformers import AutoTokenizer

    from forgetbench.runtime.vllm_support import vllm_module

    vllm = vllm_module()
    tok = AutoTokenizer.from_pretrained(model_path)
    prompt_ids = tokenize_prompts(tok, prompts)
    eos = eos_ids(tok, _generation_eos(model_path))
    dp = int(vllm_kwargs.pop("data_parallel_size", 1) or 1)
    llm_args = {**vllm_kwargs, "model": model_path, "dtype": settings.dtype, "seed": settings.seed}
    params = [
        vllm_sampling_params(vllm.SamplingParams, settings, eos, prompt_seed(settings.seed, m))
        for m in range(len(prompt_ids))
    ]
    requests = [{"prompt_token_ids": list(p)} for p in prompt_ids]
    if dp > 1:
        outs = _generate_data_parallel(llm_args, requests, params, dp)
    else:
        outs = _generate(vllm, llm_args, requests, params)
    completions = []
    for m, out in enumerate(outs):
        got = sorted(out.outputs, key=lambda o: o.index)
        if len(got) != settings.k_samples:
            raise UserError(f"vLLM returned {len(got)} completions for prompt {m}, expected {settings.k_samples}")
        for o in got:
            ids = list(o.token_ids)
            # vLLM keeps the EOS it stopped at in token_ids; a stop_token_ids hit is reported as
            # stop_reason and, depending on the version, may be missing from token_ids.
            if o.finish_reason == "stop" and isinstance(o.stop_reason, int) and (not ids or ids[-1] != o.stop_reason):
                ids.append(o.stop_reason)
            completions.append(cut_at_eos(ids, eos))
    return BaseSamples(
        prompt_ids=prompt_ids,
        completions=tuple(completions),
        prompt_index=tuple(_jobs(len(prompt_ids), settings.k_samples)),
        settings=settings,
        base_hash=base_hash,
        eos_ids=eos,
        backend="vllm",
    )
