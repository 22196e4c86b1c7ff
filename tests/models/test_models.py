"""Model resolution (local / LoRA / hub) and content hashing. GGUF and the bundled model: test_gguf.py;
building a backend from a resolved model: tests/eval/test_backends.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


from forgetbench.errors import UserError
from forgetbench.models.resolve import content_hash, resolve
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


def test_a_trained_checkpoint_says_how_it_was_made(tiny_copy, fb_home):
    assert "method" not in resolve(str(tiny_copy)).meta
    (tiny_copy / "forgetbench_train.json").write_text('{"method": "onpolicy-sft", "task": "lite_ifeval"}')
    ref = resolve(str(tiny_copy))
    assert (ref.meta["method"], ref.meta["trained_on"]) == ("onpolicy-sft", "lite_ifeval")
    (tiny_copy / "forgetbench_train.json").write_text("{not json")
    assert "method" not in resolve(str(tiny_copy)).meta  # a broken record is ignored, not fatal
