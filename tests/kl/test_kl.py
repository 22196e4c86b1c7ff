"""The forward-KL estimator (forgetbench.kl.estimate, forgetbench.kl.sample) against exact enumeration.

A 5-token vocabulary (<pad>, <eos>, a, b, c) and 3 new tokens leave 85 possible completions per
prompt, so the expected summed KL E_{y~p0}[sum_t KL(p0(.|x,y<t) || p(.|x,y<t))] is computed exactly
by enumerating them with plain full-logit forward passes, independently of the estimator's code.
"""

from __future__ import annotations

import copy
import json
import sys
import types

import numpy as np
import pytest

from forgetbench.runtime import vllm_support
import torch

from forgetbench.errors import UserError
from forgetbench.kl.estimate import BaseSamples, KLItems, KLSettings, check_compatible, kl_along, summarize, verify_head
from forgetbench.kl.sample import prompt_seed, sample_base, sample_base_vllm

PAD, EOS = 0, 1
T = 3  # max_new_tokens in the tiny tests
PROMPTS = ["a b", "c a b b c"]  # different lengths: batches need padding


def tiny_tokenizer(words=("a", "b", "c"), eos="<eos>"):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token=eos, pad_token="<pad>")


def tiny_model(seed: int, vocab: int = 5, cls=None, **extra):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        eos_token_id=EOS,
        pad_token_id=PAD,
        bos_token_id=None,
        tie_word_embeddings=False,
        **{"initializer_range": 0.25, **extra},  # far from uniform: KL of order 1 per token
    )
    torch.manual_seed(seed)
    return (cls or LlamaForCausalLM)(cfg).to(torch.float32).eval()


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny-model forwards are dominated by thread synchronisation; on a busy 2-core box two
    threads make them ~50x slower than one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def base():
    return tiny_model(1)


@pytest.fixture(scope="module")
def tuned():
    return tiny_model(2)


def _dist(model, ids):
    with torch.no_grad():
        z = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    return torch.log_softmax(z, -1)


def enumerate_exact(base, tuned, prompt):
    """{completion: (p0(y), sum fwd KL, sum rev KL, sum TV)} over every completion (EOS included)."""
    out = {}

    def walk(prefix, prob, fwd, rev, tv):
        lp, lq = _dist(base, prompt + prefix), _dist(tuned, prompt + prefix)
        p, q = lp.exp(), lq.exp()
        f, r, t = (p * (lp - lq)).sum().item(), (q * (lq - lp)).sum().item(), 0.5 * (p - q).abs().sum().item()
        for v in range(len(p)):
            y = prefix + (v,)
            args = (prob * p[v].item(), fwd + f, rev + r, tv + t)
            if v == EOS or len(y) == T:
                out[y] = args
            else:
                walk(y, *args)

    walk((), 1.0, 0.0, 0.0, 0.0)
    return out


@pytest.fixture(scope="module")
def exact(tok, base, tuned):
    return [enumerate_exact(base, tuned, tuple(tok(p, add_special_tokens=False)["input_ids"])) for p in PROMPTS]


def all_sequences(tok, exact) -> BaseSamples:
    """Every possible completion of every prompt, as if sampled (prompt-major)."""
    ids = tuple(tuple(tok(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS)
    comps, index = [], []
    for m, ex in enumerate(exact):
        comps += list(ex)
        index += [m] * len(ex)
    st = KLSettings(m_prompts=len(PROMPTS), k_samples=len(exact[0]), max_new_tokens=T)
    return BaseSamples(ids, tuple(comps), tuple(index), st, "test", (EOS,))


def test_enumeration_is_a_distribution(exact):
    for ex in exact:
        assert len(ex) == 1 + 4 + 4 * 4 * 5  # EOS first, EOS second, or 3 tokens
        assert sum(v[0] for v in ex.values()) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("batch_size,chunk", [(8, 64), (1, 1), (4, 1000), (200, 7)])
def test_per_sequence_values_are_exact(tok, base, tuned, exact, batch_size, chunk):
    """(b, f, h): every completion's summed KL equals the enumeration, whatever batching/chunking."""
    samples = all_sequences(tok, exact)
    items = kl_along(base, tuned, samples, KLSettings(batch_size=batch_size, chunk_tokens=chunk))
    want = [v for ex in exact for v in ex.values()]
    np.testing.assert_allclose(items.fwd, [w[1] for w in want], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(items.rev, [w[2] for w in want], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(items.tv, [w[3] for w in want], atol=1e-5, rtol=1e-5)
    assert items.n_tokens == tuple(len(c) for c in samples.completions)
    assert items.prompt_index == samples.prompt_index
    # (d) non-negative, and not trivially zero: the two models really differ
    for vals in (items.fwd, items.rev, items.tv):
        assert min(vals) >= 0.0 and min(vals) > 1e-3


def test_chunked_equals_unchunked(tok, base, tuned, exact):
    samples = all_sequences(tok, exact)
    a = kl_along(base, tuned, samples, KLSettings(batch_size=3, chunk_tokens=1))
    b = kl_along(base, tuned, samples, KLSettings(batch_size=3, chunk_tokens=10_000))
    for x, y in ((a.fwd, b.fwd), (a.rev, b.rev), (a.tv, b.tv)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)  # float32 round-off only


def test_monte_carlo_mean_matches_exact_expectation(tok, base, tuned, exact):
    """(a) The estimator over K samples is within 4 SE of the exact expected sum-KL, even though the
    checkpoint's generation_config asks for truncated, penalized, low-temperature sampling."""
    from transformers import GenerationConfig

    hostile = GenerationConfig(
        do_sample=False, temperature=0.2, top_k=1, top_p=0.3, min_p=0.5, repetition_penalty=4.0, eos_token_id=EOS
    )
    saved, base.generation_config = base.generation_config, hostile
    try:
        k = 1500
        st = KLSettings(m_prompts=2, k_samples=k, max_new_tokens=T, seed=3, batch_size=500)
        samples = sample_base(base, tok, PROMPTS, st, "test")
    finally:
        base.generation_config = saved
    assert base.generation_config is saved  # restored
    items = kl_along(base, tuned, samples, KLSettings(batch_size=256))
    fwd = np.asarray(items.fwd)
    for m, ex in enumerate(exact):
        probs = np.array([v[0] for v in ex.values()])
        vals = np.array([v[1] for v in ex.values()])
        mean = probs @ vals
        se = np.sqrt(probs @ (vals - mean) ** 2 / k)
        got = fwd[m * k : (m + 1) * k]
        assert abs(got.mean() - mean) < 4 * se, (m, got.mean(), mean, se)
        # the sample distribution itself: first-token frequencies and mean length
        comps = samples.completions[m * k : (m + 1) * k]
        for v in range(5):
            p = sum(pr for y, (pr, *_) in ex.items() if y[0] == v)
            freq = np.mean([c[0] == v for c in comps])
            assert abs(freq - p) < 4 * np.sqrt(p * (1 - p) / k) + 1e-9, (v, freq, p)
        lens = np.array([len(y) for y in ex])
        el, sl = probs @ lens, np.sqrt(probs @ (lens - probs @ lens) ** 2 / k)
        assert abs(np.mean([len(c) for c in comps]) - el) < 4 * sl
        # completions end exactly at their first EOS, which is kept
        for c in comps:
            assert 1 <= len(c) <= T and EOS not in c[:-1]
            assert c[-1] == EOS or len(c) == T
    assert any(PAD in c for c in samples.completions)  # a sampled pad id is a token, not padding


def test_self_kl_is_exactly_zero(tok, base, exact):
    samples = all_sequences(tok, exact)
    for other in (base, copy.deepcopy(base)):
        items = kl_along(base, other, samples, KLSettings(batch_size=5, chunk_tokens=4))
        assert set(items.fwd) == {0.0} and set(items.rev) == {0.0} and set(items.tv) == {0.0}


def _count_forwards(*models):
    calls = []
    hooks = [mod.register_forward_pre_hook(lambda *a: calls.append(1)) for m in models for mod in m.modules()]
    return calls, hooks


def test_incompatible_vocab_refused_before_any_computation(tok, base, exact):
    other = tiny_model(5, vocab=6)
    calls, hooks = _count_forwards(base, other)
    try:
        with pytest.raises(UserError, match="5 output logits.*6"):
            kl_along(base, other, all_sequences(tok, exact))
        with pytest.raises(UserError, match="different vocabularies"):
            check_compatible(tok, tok, base, other)
    finally:
        for h in hooks:
            h.remove()
    assert calls == []


def test_incompatible_tokenizers_refused(tok, base, tuned):
    check_compatible(tok, tiny_tokenizer(), base, tuned)  # equal content: fine
    with pytest.raises(UserError, match="tokenizers of base .* and tuned .* differ"):
        check_compatible(tok, tiny_tokenizer(words=("a", "b", "d")), base, tuned)
    with pytest.raises(UserError, match="special tokens"):
        check_compatible(tok, tiny_tokenizer(eos="c"), base, tuned)


def test_no_default_top_k_truncation():
    """transformers fills an unset top_k with 50: with 60 near-equiprobable tokens, all must appear."""
    words = tuple(f"w{i}" for i in range(58))
    tk = tiny_tokenizer(words=words)
    model = tiny_model(0, vocab=60, initializer_range=0.01)
    st = KLSettings(m_prompts=1, k_samples=2000, max_new_tokens=1, batch_size=1000)
    s = sample_base(model, tk, ["w1 w2"], st, "h")
    assert len({c[0] for c in s.completions}) == 60


def test_sampling_deterministic_per_seed(tok, base):
    st = KLSettings(m_prompts=2, k_samples=20, max_new_tokens=T, seed=7, batch_size=16)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = sample_base(base, tok, PROMPTS, st, "h")
    assert torch.equal(torch.random.get_rng_state(), before)  # caller's RNG untouched
    b = sample_base(base, tok, PROMPTS, st, "h")
    c = sample_base(base, tok, PROMPTS, KLSettings(**{**st.__dict__, "seed": 8}), "h")
    assert a == b
    assert a.completions != c.completions
    assert a.prompt_index == tuple([0] * 20 + [1] * 20)
    assert a.prompt_ids == ((2, 3), (4, 2, 3, 3, 4))
    assert BaseSamples.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_summarize_resamples_prompts():
    # Completions within a prompt differ wildly but every prompt has the same mean: a bootstrap over
    # prompts has nothing to vary (a bootstrap over completions would give a wide CI).
    items = KLItems(
        fwd=(0.0, 2.0, 2.0, 0.0, 1.0, 1.0),
        rev=(1.0,) * 6,
        tv=(0.5,) * 6,
        n_tokens=(1, 3, 3, 1, 2, 2),
        prompt_index=(0, 0, 1, 1, 2, 2),
    )
    s = summarize(items, n_boot=2000)
    assert s["fwd_per_seq"].value == pytest.approx(1.0)
    assert (s["fwd_per_seq"].lo, s["fwd_per_seq"].hi) == pytest.approx((1.0, 1.0))
    assert s["fwd_per_token"].value == pytest.approx(6.0 / 12.0)
    assert s["rev_per_token"].value == pytest.approx(6.0 / 12.0)
    assert s["tv_per_token"].value == pytest.approx(3.0 / 12.0)
    varied = summarize(KLItems((0.0, 0.0, 4.0, 4.0), (0,) * 4, (0,) * 4, (1,) * 4, (0, 0, 1, 1)), n_boot=2000)
    assert varied["fwd_per_seq"].value == 2.0
    assert varied["fwd_per_seq"].lo == 0.0 and varied["fwd_per_seq"].hi == 4.0


def test_softcapped_logits_and_unsupported_heads():
    from transformers import Gemma2Config, Gemma2ForCausalLM, LlamaForCausalLM

    cfg = Gemma2Config(
        vocab_size=5, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, final_logit_softcapping=0.5, eos_token_id=EOS, pad_token_id=PAD,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    gemma = Gemma2ForCausalLM(cfg).eval()
    verify_head(gemma, (2, 3, 4))  # our head path reproduces the capped logits
    torch.manual_seed(1)
    other = Gemma2ForCausalLM(cfg).eval()
    ex = enumerate_exact(gemma, other, (2, 3))
    st = KLSettings(k_samples=len(ex), max_new_tokens=T)
    items = kl_along(gemma, other, BaseSamples(((2, 3),), tuple(ex), (0,) * len(ex), st, "g"))
    np.testing.assert_allclose(items.fwd, [v[1] for v in ex.values()], atol=1e-5)

    class Scaled(LlamaForCausalLM):  # post-processes logits in a way kl.py does not know
        def forward(self, *a, **kw):
            out = super().forward(*a, **kw)
            out.logits = out.logits * 3.0
            return out

    odd = tiny_model(1, cls=Scaled)
    with pytest.raises(UserError, match="post-processes logits"):
        verify_head(odd, (2, 3, 4))


def test_text_prompts_with_real_tokenizer(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tuned = copy.deepcopy(model)
    with torch.no_grad():
        tuned.model.layers[0].mlp.down_proj.weight.mul_(1.5)
    check_compatible(tok, tok, model, tuned)
    prompts = [
        tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in ("What is 2+2?", "Name a colour, please.")
    ]
    st = KLSettings(m_prompts=2, k_samples=2, max_new_tokens=4, batch_size=3)
    s = sample_base(model, tok, prompts, st, "hash")
    assert s.prompt_ids[0] == tuple(tok(prompts[0], add_special_tokens=False)["input_ids"])
    assert s.prompt_ids[0][0] == tok.convert_tokens_to_ids("<|im_start|>")  # from the template, once
    assert s.prompt_ids[0][1] != s.prompt_ids[0][0]
    assert len(s.completions) == 4 and all(1 <= len(c) <= 4 for c in s.completions)
    assert s.eos_ids[0] == tok.eos_token_id
    items = kl_along(model, tuned, s)
    assert min(items.fwd) > 0 and min(items.tv) > 0
    assert set(kl_along(model, model, s).fwd) == {0.0}
    est = summarize(items, n_boot=500)
    assert est["fwd_per_token"].lo <= est["fwd_per_token"].value <= est["fwd_per_token"].hi


# ------------------------------------------------------------------------------ vLLM mapping


def _fake_vllm(record):
    mod = types.ModuleType("vllm")

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LLM:
        def __init__(self, **kw):
            record["llm"] = kw
            self.llm_engine = types.SimpleNamespace(engine_core=types.SimpleNamespace(
                shutdown=lambda: record.update(stopped=True)))

        def generate(self, prompts, params, use_tqdm=True):
            record["prompts"], record["params"] = prompts, params
            out = lambda i, ids, reason, stop=None: types.SimpleNamespace(  # noqa: E731
                index=i, token_ids=ids, finish_reason=reason, stop_reason=stop
            )
            return [
                types.SimpleNamespace(outputs=[out(1, [3], "stop", 4), out(0, [2, EOS], "stop")]),
                types.SimpleNamespace(outputs=[out(0, [2, 2, 2], "length"), out(1, [3, 3, EOS], "stop")]),
            ]

    mod.SamplingParams, mod.LLM = SamplingParams, LLM
    return mod


def test_vllm_sampling_params_mapping(tmp_path, tok, monkeypatch):
    tok.save_pretrained(tmp_path)
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [EOS, 4], "top_k": 20}))
    record: dict = {}
    monkeypatch.setattr(vllm_support, "vllm_module", lambda: _fake_vllm(record))
    st = KLSettings(m_prompts=2, k_samples=2, max_new_tokens=3, seed=11, dtype="float16")
    s = sample_base_vllm(str(tmp_path), PROMPTS, st, "h", tensor_parallel_size=2)
    assert record["llm"] == {"model": str(tmp_path), "dtype": "float16", "seed": 11, "tensor_parallel_size": 2}
    assert record["stopped"]  # the engine is stopped before sample_base_vllm returns
    assert record["prompts"] == [{"prompt_token_ids": [2, 3]}, {"prompt_token_ids": [4, 2, 3, 3, 4]}]
    kws = [p.kw for p in record["params"]]
    for m, kw in enumerate(kws):
        assert kw["n"] == 2 and kw["max_tokens"] == 3 and kw["seed"] == prompt_seed(11, m)
        assert (kw["temperature"], kw["top_p"], kw["top_k"], kw["min_p"]) == (1.0, 1.0, -1, 0.0)
        assert (kw["repetition_penalty"], kw["presence_penalty"], kw["frequency_penalty"]) == (1.0, 0.0, 0.0)
        assert kw["stop_token_ids"] == [EOS, 4] and kw["ignore_eos"] is False
    assert kws[0]["seed"] != kws[1]["seed"]
    # sorted by output index; a stop-token hit missing from token_ids is appended
    assert s.completions == ((2, EOS), (3, 4), (2, 2, 2), (3, 3, EOS))
    assert s.prompt_index == (0, 0, 1, 1) and s.backend == "vllm" and s.eos_ids == (EOS, 4)


def test_vllm_missing_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(UserError, match="needs vLLM"):
        sample_base_vllm(str(tmp_path), ["a"], KLSettings(), "h")
