"""Forward KL of a tuned model from its base along the base model's own samples ("RL's Razor").

Forgetting tracks KL(pi0 || pi) on the new task's prompts. For a prompt x and completions y drawn
from the base pi0 (temperature 1, no truncation, stopping at EOS, the EOS token included), the
estimator of one completion is

    sum_t KL(pi0(.|x, y<t) || pi(.|x, y<t))      (exact over the full vocabulary, every position t)

Its expectation over y ~ pi0 is exactly the sequence-level KL(pi0(.|x) || pi(.|x)) (chain rule),
so the only error is Monte Carlo, and it has lower variance than the log-ratio log pi0(y)/pi(y).
`rev` and `tv` are the reverse KL and total variation at the same base-sampled contexts: per-token
diagnostics, not the sequence-level reverse KL (that would need samples from the tuned model).

Memory: each model's transformer body runs once per batch (last hidden state [B, L, H]); only the
completion positions are then pushed through the LM head, `chunk_tokens` positions at a time, so
at most one [chunk, vocab] block of logits per model exists at any time, whatever the length.
The KL arithmetic is float32 (log_softmax); the model forwards run in the model's own dtype.

Sampling lives in forgetbench.kl.sample (HF generate and vLLM); this module computes and summarizes.
Heavy imports (torch, transformers) happen inside functions.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import numpy as np

from forgetbench.errors import UserError
from forgetbench.runtime.hardware import configure_threads
from forgetbench.runtime.progress import bar
from forgetbench.stats import KL_BOOT_SEED, KL_N_BOOT
from forgetbench.stats.bootstrap import percentile_ci, seeded_sums
from forgetbench.records import Estimate


@dataclass(frozen=True)
class KLSettings:
    """How base samples are drawn and KL computed. All but batch_size/chunk_tokens change results."""

    m_prompts: int = 32  # prompts taken from the task (the caller picks which)
    k_samples: int = 4  # base completions per prompt
    max_new_tokens: int = 256  # the task's generation length
    seed: int = 0
    dtype: str = "bfloat16"  # for loading models (load(), vLLM); the KL math is always float32
    batch_size: int = 8  # sequences per forward / generate call
    chunk_tokens: int = 64  # completion positions per LM-head chunk (bounds peak memory)


@dataclass(frozen=True)
class BaseSamples:
    """Completions sampled from the base model. completions[i] belongs to prompt prompt_index[i];
    prompt-major order: index = m * K + k. A completion that stopped at EOS ends with that EOS."""

    prompt_ids: tuple[tuple[int, ...], ...]  # tokenized prompts (add_special_tokens=False)
    completions: tuple[tuple[int, ...], ...]
    prompt_index: tuple[int, ...]
    settings: KLSettings
    base_hash: str  # ModelRef.content_hash of the model that produced the samples
    eos_ids: tuple[int, ...] = ()  # the tokens generation stopped at
    backend: str = "hf"  # hf | vllm

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> BaseSamples:
        tup = lambda xs: tuple(tuple(int(t) for t in x) for x in xs)  # noqa: E731
        return cls(
            prompt_ids=tup(d["prompt_ids"]),
            completions=tup(d["completions"]),
            prompt_index=tuple(int(i) for i in d["prompt_index"]),
            settings=KLSettings(**d["settings"]),
            base_hash=d["base_hash"],
            eos_ids=tuple(int(i) for i in d.get("eos_ids", ())),
            backend=d.get("backend", "hf"),
        )


@dataclass(frozen=True)
class KLItems:
    """Per completion (same order as BaseSamples.completions): sums over its tokens."""

    fwd: tuple[float, ...]  # sum_t KL(base || tuned)
    rev: tuple[float, ...]  # sum_t KL(tuned || base)
    tv: tuple[float, ...]  # sum_t total variation distance
    n_tokens: tuple[int, ...]
    prompt_index: tuple[int, ...]


# ------------------------------------------------------------------------------ compatibility


def _logit_dim(model) -> int:
    head = model.get_output_embeddings()
    if head is None or not hasattr(head, "weight"):
        raise UserError(f"{_name(model)}: has no output embedding (LM head); cannot compute token distributions")
    return int(head.weight.shape[0])


def _name(obj) -> str:
    cfg = getattr(obj, "config", None)
    return str(getattr(cfg, "_name_or_path", None) or getattr(obj, "name_or_path", None) or type(obj).__name__)


def check_logit_dims(base_model, tuned_model) -> None:
    vb, vt = _logit_dim(base_model), _logit_dim(tuned_model)
    if vb != vt:
        raise UserError(
            f"cannot compute KL: base model {_name(base_model)} has {vb} output logits but tuned model "
            f"{_name(tuned_model)} has {vt} (different vocabularies)"
        )


def check_compatible(base_tok, tuned_tok, base_model, tuned_model) -> None:
    """Refuse (UserError) pairs whose next-token distributions are not over the same tokens."""
    check_logit_dims(base_model, tuned_model)
    vb, vt = base_tok.get_vocab(), tuned_tok.get_vocab()
    if vb != vt:
        diff = sorted(set(vb.items()) ^ set(vt.items()))[:5]
        raise UserError(
            f"cannot compute KL: tokenizers of base {_name(base_tok)} and tuned {_name(tuned_tok)} differ "
            f"({len(vb)} vs {len(vt)} tokens; e.g. {diff})"
        )
    sb, st = dict(base_tok.special_tokens_map), dict(tuned_tok.special_tokens_map)
    if sb != st:
        raise UserError(
            f"cannot compute KL: special tokens of base {_name(base_tok)} ({sb}) and tuned "
            f"{_name(tuned_tok)} ({st}) differ"
        )


# ------------------------------------------------------------------------------ the KL pass


@contextlib.contextmanager
def eval_mode(*models):
    """Dropout off for the duration (a model in train mode would give noisy distributions)."""
    was = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        yield
    finally:
        for m, w in zip(models, was):
            m.train(w)


def _final_logits(model, hidden):
    """Float32 logits of hidden states [N, H], with the output processing some configs declare."""
    import torch

    z = model.get_output_embeddings()(hidden).float()
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    cap = getattr(cfg, "final_logit_softcapping", None)  # Gemma 2/3
    if cap:
        z = torch.tanh(z / cap) * cap
    scale = getattr(cfg, "logits_scaling", None)  # Granite divides
    if scale:
        z = z / scale
    mult = getattr(cfg, "logit_scale", None)  # Cohere multiplies
    if mult:
        z = z * mult
    return z


def _body(model, input_ids, attention_mask):
    """Last hidden state [B, L, H] (final norm applied) without computing any logits."""
    out = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


def verify_head(model, ids: tuple[int, ...]) -> None:
    """Our body + head path must reproduce model(ids).logits; catches architectures whose logits
    need processing we do not apply (a silent wrong KL is worse than a refusal)."""
    import torch

    x = torch.tensor([ids[:16]], device=model.device)
    ref = model(input_ids=x).logits[0].float()
    ours = _final_logits(model, _body(model, x, torch.ones_like(x))[0])
    tol = 0.02 * (1.0 + ref.abs().max().item())
    err = (ref - ours).abs().max().item()
    if not err <= tol:
        raise UserError(
            f"{_name(model)} ({type(model).__name__}): logits from its decoder + LM head differ from the "
            f"model's own logits by {err:.3g}; this architecture post-processes logits in a way the KL "
            "estimator does not support"
        )


def token_stats(lp, lq):
    """Per-position fwd KL, reverse KL and TV from float32 log-probs [c, V] (overwrites lp).

    In place where possible: at most lp, lq, p, q and one product are alive, ~5 * c * V floats.
    """
    p, q = lp.exp(), lq.exp()
    d = lp.sub_(lq)  # log p - log q
    fwd = (p * d).sum(dim=-1)
    rev = (q * d).sum(dim=-1).neg_()
    tv = 0.5 * p.sub_(q).abs_().sum(dim=-1)
    # KL >= 0; round-off on near-identical distributions can give -1e-9: clamp per position.
    return fwd.clamp_(min=0.0), rev.clamp_(min=0.0), tv


def kl_along(base_model, tuned_model, samples: BaseSamples, settings: KLSettings | None = None) -> KLItems:
    """Exact per-token KL/reverse-KL/TV summed along each base sample (see module docstring).

    Position t of a completion is predicted from prompt + completion[:t]; t = 0 is predicted from
    the last prompt token. Results do not depend on batch_size or chunk_tokens beyond round-off.
    """
    import torch

    settings = settings or samples.settings
    check_logit_dims(base_model, tuned_model)
    n = len(samples.completions)
    if len(samples.prompt_index) != n:
        raise ValueError("prompt_index and completions differ in length")
    seqs = []
    for i in range(n):
        prompt, comp = samples.prompt_ids[samples.prompt_index[i]], samples.completions[i]
        if not prompt or not comp:
            raise UserError(f"completion {i}: empty prompt or empty completion; nothing to score")
        seqs.append((prompt, comp))
    sums = torch.zeros(n, 3, dtype=torch.float64)
    if n == 0:
        return KLItems((), (), (), (), ())
    models = (base_model, tuned_model)
    # Longest first: similar lengths share a batch, so little of each batch is padding.
    order = sorted(range(n), key=lambda i: -(len(seqs[i][0]) + len(seqs[i][1])))
    with eval_mode(*models), torch.inference_mode():
        for m in models:
            verify_head(m, seqs[order[-1]][0] + seqs[order[-1]][1])
        for s in bar(range(0, n, settings.batch_size), desc="kl: base vs tuned", unit="batch"):
            idx = order[s : s + settings.batch_size]
            _batch(models, [seqs[i] for i in idx], torch.tensor(idx), sums, settings.chunk_tokens)
    return KLItems(
        fwd=tuple(sums[:, 0].tolist()),
        rev=tuple(sums[:, 1].tolist()),
        tv=tuple(sums[:, 2].tolist()),
        n_tokens=tuple(len(c) for _, c in seqs),
        prompt_index=tuple(samples.prompt_index),
    )


def _batch(models, seqs, seq_ids, sums, chunk_tokens: int) -> None:
    import torch

    width = max(len(p) + len(c) for p, c in seqs)
    # Right padding: real tokens keep positions 0..T-1 (as in the left-padded generation, whose
    # position ids count real tokens only), and causal attention never looks at the pad.
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    rows, cols, owner = [], [], []
    for b, (p, c) in enumerate(seqs):
        t = len(p) + len(c)
        ids[b, :t] = torch.tensor(p + c)
        mask[b, :t] = 1
        rows.append(torch.full((len(c),), b))
        cols.append(torch.arange(len(p) - 1, t - 1))  # hidden state at j predicts token j + 1
        owner.append(torch.full((len(c),), int(seq_ids[b])))
    rows, cols, owner = torch.cat(rows), torch.cat(cols), torch.cat(owner)
    # Only completion positions leave the body: [N, H] per model, not [B, L, H].
    hidden = []
    for m in models:
        d = m.device
        hidden.append(_body(m, ids.to(d), mask.to(d))[rows.to(d), cols.to(d)])
    for s in range(0, len(rows), chunk_tokens):
        # log_softmax straight from the head: the raw float32 logits are freed at once.
        lp = torch.log_softmax(_final_logits(models[0], hidden[0][s : s + chunk_tokens]), dim=-1)
        lq = torch.log_softmax(_final_logits(models[1], hidden[1][s : s + chunk_tokens]), dim=-1)
        stats = torch.stack(token_stats(lp, lq.to(lp.device)), dim=1).double().cpu()
        sums.index_add_(0, owner[s : s + chunk_tokens], stats)


# ------------------------------------------------------------------------------ summaries


# summarize's estimate names -> their short names in the store's pair_kl columns and in results.json's kl block
SHORT_NAMES = {"fwd_per_seq": "fwd_seq", "fwd_per_token": "fwd_tok", "rev_per_token": "rev_tok", "tv_per_token": "tv_tok"}


def summarize(items: KLItems, n_boot: int = KL_N_BOOT, seed: int = KL_BOOT_SEED) -> dict[str, Estimate]:
    """Point estimates and 95% percentile-bootstrap CIs, resampling prompts (a prompt's K
    completions move together, since they share the prompt's variance).

    fwd_per_seq: mean over completions of the summed forward KL (estimates KL(pi0 || pi) per
    response); *_per_token: total over all tokens / total tokens (ratio estimator).
    """
    if not items.fwd:
        raise UserError("no KL items to summarize")
    _, unit = np.unique(np.asarray(items.prompt_index), return_inverse=True)
    unit = unit.reshape(-1)
    cols = [items.fwd, items.rev, items.tv, items.n_tokens, np.ones(len(items.fwd))]
    per_prompt = np.stack([np.bincount(unit, weights=np.asarray(c, float)) for c in cols], axis=1)
    tot = per_prompt.sum(axis=0)
    reps = seeded_sums(per_prompt, n_boot, seed)  # the same draws as default_rng(seed) gives resample_sums

    def ratio(num: int, den: int) -> Estimate:
        lo, hi = percentile_ci(reps[:, num] / reps[:, den])
        return Estimate(float(tot[num] / tot[den]), lo, hi)

    return {
        "fwd_per_seq": ratio(0, 4),
        "fwd_per_token": ratio(0, 3),
        "rev_per_token": ratio(1, 3),
        "tv_per_token": ratio(2, 3),
    }


def load(path: str, dtype: str = "bfloat16", device: str = "cpu"):
    """(model, tokenizer) from a resolved model directory, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device == "cpu":
        configure_threads()
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device)
    except (OSError, ValueError) as e:
        raise UserError(f"transformers cannot load {path}: {e}") from e
    return model.eval(), tok
