"""Building lm-eval models from a resolved checkpoint: the hf backend on the tiny model, the vLLM argument
mapping (vllm itself is not installed here)."""

from __future__ import annotations

import math
import sys
import types

import pytest

from forgetbench.errors import UserError
from forgetbench.eval.backends import build_lm
from forgetbench.models.resolve import resolve
from forgetbench.records import EvalSettings
from forgetbench.runtime import vllm_support


def test_hf_backend_on_tiny_model(tiny_model_dir, fb_home):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    ref = resolve(str(tiny_model_dir))
    lm = build_lm(ref, EvalSettings(backend="hf", dtype="float32", batch_size=2))
    assert isinstance(lm, HFLM)
    reqs = [
        Instance("loglikelihood", {}, ("The capital of France is", " Paris"), 0),
        Instance("loglikelihood", {}, ("2 + 2 =", " 4"), 1),
    ]
    res = lm.loglikelihood(reqs)
    assert len(res) == 2 and all(math.isfinite(ll) and ll < 0 for ll, _ in res)
    assert res[0][0] != res[1][0]
    prompt = lm.apply_chat_template([{"role": "user", "content": "hi"}])
    assert prompt.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    out = lm.generate_until([Instance("generate_until", {}, (prompt, {"until": ["\n\n"], "max_gen_toks": 3}), 0)])
    assert len(out) == 1 and isinstance(out[0], str)


def test_vllm_argument_mapping(monkeypatch, tiny_model_dir, fb_home):
    seen = {}

    class FakeVLLM:
        def __init__(self, **kw):
            seen.update(kw)

    fake_mod = types.ModuleType("lm_eval.models.vllm_causallms")
    fake_mod.VLLM = FakeVLLM
    monkeypatch.setitem(sys.modules, "lm_eval.models.vllm_causallms", fake_mod)
    monkeypatch.setattr(vllm_support, "vllm_module", lambda: None)  # vllm itself is not installed here
    ref = resolve(str(tiny_model_dir))
    settings = EvalSettings(
        backend="vllm", dtype="float16", seed=7, tensor_parallel_size=2, data_parallel_size=3, gpu_memory_utilization=0.5,
        max_model_len=2048,
    )
    lm = build_lm(ref, settings)
    assert isinstance(lm, FakeVLLM)
    assert seen == {
        "pretrained": ref.path,
        "dtype": "float16",
        "tensor_parallel_size": 2,
        "data_parallel_size": 3,
        "gpu_memory_utilization": 0.5,
        "max_model_len": 2048,
        "seed": 7,
        "batch_size": "auto",
        "trust_remote_code": False,
    }
    monkeypatch.setitem(sys.modules, "lm_eval.models.vllm_causallms", None)  # import now fails
    with pytest.raises(UserError, match=r"cannot import lm-eval's vLLM model"):
        build_lm(ref, settings)
    with pytest.raises(UserError, match="unknown backend 'tgi'"):
        build_lm(ref, EvalSettings(backend="tgi"))
