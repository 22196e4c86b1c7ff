"""Resolve what the user typed as a model into a local Hugging Face directory and its content hash.

Every way of naming a model ends in a plain HF directory (config.json + weights + tokenizer) that
transformers and vLLM both load, plus a sha256 over the bytes that decide its outputs. Conversions
(GGUF -> HF, LoRA adapter -> merged model) are cached under `paths.home()/"models"`, keyed by the
hash of their inputs, and written atomically (tmp dir + rename) so an interrupted run never leaves
a half-written model behind.

Resolving a plain local directory reads files only: torch/transformers are imported only by the
conversions that need them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

from forgetbench.models import bundled
from forgetbench.models.gguf import convert_gguf, torch_dtype
from forgetbench.models.identity import (
    ADAPTER_VOLATILE, TOKENIZER_FILES, atomic_dir, content_hash, file_sha256, has_chat_template, hashed_files,
    normalized_json, weight_files,
)
from forgetbench import paths
from forgetbench.errors import UserError, one_line
from forgetbench.records import ModelRef

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
FAKE_PREFIX = "fake:"  # a spec naming a fake-backend script (forgetbench/eval/fake.py)
FAKE_KIND = "fake"  # the ModelRef.kind such a spec resolves to


def is_fake(model: ModelRef | str) -> bool:
    """Whether `model` (a resolved ModelRef, or a spec as typed) is a fake-backend script: the one place that
    decides it. Which backend runs such scripts is the backend registry's question (forgetbench.eval.backends)."""
    return model.startswith(FAKE_PREFIX) if isinstance(model, str) else model.kind == FAKE_KIND


def precheck(spec: str) -> None:
    """resolve's checks that cost nothing (no hashing, conversion or download): a missing path, a file
    that is not a .gguf, a malformed fake script. `forgetbench eval` runs it before loading any data."""
    if spec == bundled.BUNDLED:
        return
    if is_fake(spec):
        _resolve_fake(spec)
        return
    p = Path(spec).expanduser()
    if p.exists():
        if p.is_file() and p.suffix != ".gguf":
            raise UserError(f"{spec}: expected a model directory, a .gguf file or a hub id, got a file")
        return
    if _HUB_ID.match(spec) and not spec.startswith((".", "/", "~")) and not spec.endswith(".gguf"):
        return
    raise UserError(
        f"{spec}: no such file or directory; expected a local HF model directory, a LoRA adapter "
        f"directory, a .gguf file, a hub id (org/name[@revision]), fake:SCRIPT or {bundled.BUNDLED!r}"
    )


def resolve(spec: str, *, dtype: str = "bfloat16", cache: Path | None = None) -> ModelRef:
    """Turn a model argument into a ModelRef (see module docstring for the accepted forms)."""
    cache = Path(cache) if cache is not None else paths.home() / "models"
    precheck(spec)
    if spec == bundled.BUNDLED:
        path = bundled.materialize(cache)
        return _ref(spec, "bundled", path, dtype, source=str(bundled.bundled_gguf_path()))
    if is_fake(spec):
        return _resolve_fake(spec)
    p = Path(spec).expanduser()
    if p.exists():
        if p.is_file():
            return _ref(spec, "gguf", convert_gguf(p, cache, dtype), dtype, source=str(p.resolve()))
        if (p / "adapter_config.json").is_file():
            return _resolve_peft(spec, p, dtype, cache)
        check_model_dir(p)
        return _ref(spec, "local", p.resolve(), dtype, source=str(p.resolve()))
    return _resolve_hub(spec, dtype, cache)  # precheck: a hub id


def check_model_dir(p: Path) -> None:
    """Fail early, naming what is missing, instead of deep inside transformers."""
    if not (p / "config.json").is_file():
        raise UserError(f"{p}: not a Hugging Face model directory (no config.json)")
    if not weight_files(p):
        raise UserError(f"{p}: has config.json but no weights (*.safetensors or *.bin)")
    if not any((p / f).is_file() for f in TOKENIZER_FILES) and not list(p.glob("*.model")):
        raise UserError(f"{p}: has no tokenizer files (tokenizer.json / tokenizer_config.json / *.model)")


def _ref(spec: str, kind: str, path: Path, dtype: str, **meta) -> ModelRef:
    path = Path(path)
    return ModelRef(
        spec=spec,
        kind=kind,
        path=str(path),
        content_hash=content_hash(path),
        has_chat_template=has_chat_template(path),
        meta={"dtype": dtype, **_trained_as(path), **meta},
    )


def _trained_as(path: Path) -> dict:
    """{method, trained_on} of a `forgetbench train` checkpoint (its forgetbench_train.json), so the
    store, `forgetbench law` and export know how a tuned model was made; {} for any other model."""
    try:
        record = json.loads((path / paths.TRAIN_RECORD).read_text())
        return {"method": str(record["method"]), "trained_on": str(record["task"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


# ----------------------------------------------------------------------------------- hashing


# ------------------------------------------------------------------------------- conversions


def _resolve_peft(spec: str, adapter: Path, dtype: str, cache: Path) -> ModelRef:
    try:
        acfg = json.loads((adapter / "adapter_config.json").read_text())
    except ValueError as e:
        raise UserError(f"{adapter}/adapter_config.json is not valid JSON: {e}") from e
    base_spec = acfg.get("base_model_name_or_path")
    if not base_spec:
        raise UserError(f"{adapter}: adapter_config.json has no base_model_name_or_path")
    base = resolve(base_spec, dtype=dtype, cache=cache)
    if is_fake(base):
        raise UserError(f"{adapter}: a LoRA adapter needs a real base model, not {base_spec}")
    # Adapter identity: its config (minus where the base happened to live: the base hash covers
    # the base), its weights, and any tokenizer/chat template saved next to it.
    ah = hashlib.sha256(normalized_json(adapter / "adapter_config.json", ADAPTER_VOLATILE))
    for f in sorted(set(adapter.glob("adapter_model*")) | set(hashed_files(adapter))):
        if f.name != "adapter_config.json":
            ah.update(f.name.encode() + b"\0" + file_sha256(f).encode())
    key = hashlib.sha256(f"{base.content_hash}:{ah.hexdigest()}:{dtype}".encode()).hexdigest()
    dest = cache / f"peft-{key[:16]}"

    def build(tmp: Path) -> None:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # Merge in float32 and round once to the target dtype: merging into bf16 weights rounds twice.
        model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)
        # An SFT run often saves its tokenizer (and changed chat template) next to the adapter; that
        # one is what the tuned model was trained with.
        tok_dir = adapter if (adapter / "tokenizer_config.json").is_file() else Path(base.path)
        tok = AutoTokenizer.from_pretrained(tok_dir)
        if len(tok) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tok))
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        save_dtype = torch_dtype(dtype, default=str(base_dtype(base.path)))
        merged.to(save_dtype).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "forgetbench_source.json").write_text(json.dumps({"adapter": str(adapter), "base": base.content_hash}))

    path = atomic_dir(dest, build)
    return _ref(spec, "peft", path, dtype, source=str(adapter.resolve()), base=base_spec, base_hash=base.content_hash)


def base_dtype(model_dir: str) -> str:
    """The dtype a directory's config declares (used when the user asks for "auto")."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    d = cfg.get("dtype") or cfg.get("torch_dtype") or "bfloat16"
    return d if d in ("float32", "float16", "bfloat16") else "bfloat16"


# ------------------------------------------------------------------------------ hub and fake

_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


def _resolve_hub(spec: str, dtype: str, cache: Path) -> ModelRef:
    repo_id, _, revision = spec.partition("@")
    revision = revision or None
    from huggingface_hub import snapshot_download

    def download(patterns: list[str]) -> Path:
        kw = dict(repo_id=repo_id, revision=revision, allow_patterns=patterns, ignore_patterns=["original/*", "onnx/*"])
        try:  # an already-cached snapshot works offline and skips a network round trip
            return Path(snapshot_download(**kw, local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached (or partially): go online
            pass
        try:
            return Path(snapshot_download(**kw))
        except Exception as e:  # noqa: BLE001 - offline, gated, missing repo, bad revision ...
            from huggingface_hub import constants

            raise UserError(f"cannot download {repo_id} from the hub: {type(e).__name__}: {one_line(e)} "
                            f"(hub: {constants.ENDPOINT}); pass a local directory") from e

    path = download(_HUB_PATTERNS)
    if (path / "adapter_config.json").is_file():
        ref = _resolve_peft(spec, path, dtype, cache)
    else:
        if not weight_files(path):  # older repos ship only pytorch_model*.bin
            path = download(_HUB_PATTERNS + ["*.bin"])
        check_model_dir(path)
        ref = _ref(spec, "hub", path, dtype, source=repo_id, commit=path.name, requested_revision=revision)
    # the store records the commit the snapshot is (huggingface_hub names snapshot folders by commit id),
    # not the branch or tag typed, which may move
    return dataclasses.replace(ref, revision=path.name if _COMMIT.match(path.name) else revision)


def _resolve_fake(spec: str) -> ModelRef:
    f = Path(spec[len(FAKE_PREFIX) :]).expanduser()
    if not f.is_file():
        raise UserError(f"{spec}: fake-backend script {f} does not exist (expected a JSON file)")
    from forgetbench.models.fake_script import load

    script = load(f)
    return ModelRef(
        spec=spec,
        kind=FAKE_KIND,
        path=str(f.resolve()),
        content_hash=file_sha256(f),
        has_chat_template=bool(script.get("chat_template", True)),
        meta={"source": str(f.resolve()), "dtype": None, "name": script.get("name", f.stem)},
    )
