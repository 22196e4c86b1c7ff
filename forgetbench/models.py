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
import os
import re
import shutil
import tempfile
from pathlib import Path

from forgetbench import bundled, paths
from forgetbench.errors import UserError, one_line
from forgetbench.records import ModelRef

# Files whose bytes decide a model's outputs. Top level only: training output dirs carry
# checkpoint-*/ subdirs and optimizer states that are not this model.
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_TOKENIZER_FILES = {
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
}
_TEMPLATE_FILES = {"chat_template.jinja", "chat_template.json"}
# generation_config.json is included although not in the brief's list: its eos_token_id list
# changes where HF generation stops.
_CONFIG_FILES = {"config.json", "generation_config.json"}
_NOT_WEIGHTS = {"training_args.bin", "optimizer.bin", "scheduler.bin"}  # Trainer state, not model
# Keys transformers rewrites on every save; dropping them keeps a re-saved model the same model.
_VOLATILE_KEYS = {
    "transformers_version",
    "_name_or_path",
    "_model_name_or_path",
    "_commit_hash",
    "is_local",
    "local_files_only",
}
_ADAPTER_VOLATILE = _VOLATILE_KEYS | {"base_model_name_or_path", "revision", "peft_version", "inference_mode"}
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def precheck(spec: str) -> None:
    """resolve's checks that cost nothing (no hashing, conversion or download): a missing path, a file
    that is not a .gguf, a malformed fake script. `forgetbench eval` runs it before loading any data."""
    if spec == bundled.BUNDLED:
        return
    if spec.startswith("fake:"):
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
    if spec.startswith("fake:"):
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
    if not _weight_files(p):
        raise UserError(f"{p}: has config.json but no weights (*.safetensors or *.bin)")
    if not any((p / f).is_file() for f in _TOKENIZER_FILES) and not list(p.glob("*.model")):
        raise UserError(f"{p}: has no tokenizer files (tokenizer.json / tokenizer_config.json / *.model)")


def _weight_files(p: Path) -> list[Path]:
    return [f for f in p.iterdir() if f.is_file() and f.suffix in _WEIGHT_SUFFIXES and f.name not in _NOT_WEIGHTS]


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
        record = json.loads((path / "forgetbench_train.json").read_text())
        return {"method": str(record["method"]), "trained_on": str(record["task"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


# ----------------------------------------------------------------------------------- hashing


def hashed_files(p: Path) -> list[Path]:
    """The files content_hash covers, sorted by relative path."""
    out = []
    for f in p.iterdir():
        if not f.is_file():
            continue
        name = f.name
        if (
            (f.suffix in _WEIGHT_SUFFIXES and name not in _NOT_WEIGHTS)
            or name in _TOKENIZER_FILES
            or name in _TEMPLATE_FILES
            or name in _CONFIG_FILES
            or f.suffix == ".model"  # sentencepiece
        ):
            out.append(f)
    extra = p / "additional_chat_templates"
    if extra.is_dir():
        out += [f for f in extra.glob("*.jinja") if f.is_file()]
    return sorted(out, key=lambda f: f.relative_to(p).as_posix())


def content_hash(p: Path) -> str:
    """sha256 over (relative path, bytes) of the files that decide outputs; cached by stat.

    JSON config/tokenizer files are hashed after dropping keys transformers rewrites on each save
    (transformers_version, _name_or_path, ...). The digest is cached in a sidecar keyed by
    (path, size, mtime_ns) of every hashed file, so re-hashing a 270 MB model costs a few stats.
    """
    p = Path(p).resolve()
    if p.is_file():
        return file_sha256(p)
    files = hashed_files(p)
    stats = [(f.relative_to(p).as_posix(), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    key = hashlib.sha256(json.dumps([str(p), stats]).encode()).hexdigest()
    sidecar = paths.home() / "hashes" / f"{key}.txt"
    if sidecar.is_file():
        cached = sidecar.read_text().strip()
        if len(cached) == 64:
            return cached
    h = hashlib.sha256()
    for f in files:
        rel = f.relative_to(p).as_posix()
        h.update(rel.encode() + b"\0")
        if f.suffix == ".json":
            data = _normalized_json(f)
            h.update(len(data).to_bytes(8, "little") + data)
        else:
            h.update(f.stat().st_size.to_bytes(8, "little"))
            _update_from_file(h, f)
    digest = h.hexdigest()
    _atomic_write_text(sidecar, digest)
    return digest


def _normalized_json(f: Path, volatile: set[str] = _VOLATILE_KEYS) -> bytes:
    raw = f.read_bytes()
    try:
        obj = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if k not in volatile}
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _update_from_file(h, f: Path) -> None:
    with open(f, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)


def file_sha256(f: Path) -> str:
    """sha256 of one file's bytes (GGUF files, fake scripts), cached like content_hash."""
    f = Path(f).resolve()
    st = f.stat()
    key = hashlib.sha256(json.dumps([str(f), st.st_size, st.st_mtime_ns]).encode()).hexdigest()
    sidecar = paths.home() / "hashes" / f"{key}.txt"
    if sidecar.is_file() and len(cached := sidecar.read_text().strip()) == 64:
        return cached
    h = hashlib.sha256()
    _update_from_file(h, f)
    _atomic_write_text(sidecar, h.hexdigest())
    return h.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def has_chat_template(p: Path) -> bool:
    p = Path(p)
    if (p / "chat_template.jinja").is_file() or (p / "chat_template.json").is_file():
        return True
    tc = p / "tokenizer_config.json"
    if tc.is_file():
        try:
            return bool(json.loads(tc.read_text()).get("chat_template"))
        except ValueError:
            return False
    return False


# ------------------------------------------------------------------------------- conversions


def atomic_dir(dest: Path, build) -> Path:
    """Run build(tmp_dir) and rename tmp_dir to dest; a crash leaves only a .tmp-* dir behind."""
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".tmp-{dest.name}-"))
    try:
        build(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a converted model is an ordinary shared dir
        try:
            os.rename(tmp, dest)
        except OSError:  # another process finished the same conversion first
            if not dest.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _torch_dtype(dtype: str, default: str = "bfloat16"):
    import torch

    return getattr(torch, default if dtype in (None, "auto") else dtype)


def convert_gguf(gguf: Path, cache: Path, dtype: str = "bfloat16", name: str | None = None) -> Path:
    """Dequantize a GGUF file into an HF directory once; keyed by the file's sha256 (and dtype)."""
    gguf = Path(gguf).resolve()
    save_dtype = "bfloat16" if dtype in (None, "auto") else dtype
    digest = file_sha256(gguf)
    suffix = "" if save_dtype == "bfloat16" else f"-{save_dtype}"
    dest = Path(cache) / f"{name or 'gguf'}-{digest[:12]}{suffix}"

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from forgetbench.gguf_parse import parsed_once

        try:
            with parsed_once():
                tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
                model = AutoModelForCausalLM.from_pretrained(
                    gguf.parent, gguf_file=gguf.name, dtype=_torch_dtype(save_dtype)
                )
        except Exception as e:  # noqa: BLE001 - transformers raises many types for bad files
            raise UserError(f"{gguf}: cannot convert this GGUF file with transformers: {e}") from e
        # The loaded model still carries the GGUF quantizer; saved as-is, transformers would try
        # to re-quantize on load. The weights are already dequantized.
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer.remove_quantization_config(model)
        model.to(_torch_dtype(save_dtype))
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "forgetbench_source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": digest}))

    return atomic_dir(dest, build)


def _resolve_peft(spec: str, adapter: Path, dtype: str, cache: Path) -> ModelRef:
    try:
        acfg = json.loads((adapter / "adapter_config.json").read_text())
    except ValueError as e:
        raise UserError(f"{adapter}/adapter_config.json is not valid JSON: {e}") from e
    base_spec = acfg.get("base_model_name_or_path")
    if not base_spec:
        raise UserError(f"{adapter}: adapter_config.json has no base_model_name_or_path")
    base = resolve(base_spec, dtype=dtype, cache=cache)
    if base.kind == "fake":
        raise UserError(f"{adapter}: a LoRA adapter needs a real base model, not {base_spec}")
    # Adapter identity: its config (minus where the base happened to live: the base hash covers
    # the base), its weights, and any tokenizer/chat template saved next to it.
    ah = hashlib.sha256(_normalized_json(adapter / "adapter_config.json", _ADAPTER_VOLATILE))
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
        save_dtype = _torch_dtype(dtype, default=str(base_dtype(base.path)))
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
        if not _weight_files(path):  # older repos ship only pytorch_model*.bin
            path = download(_HUB_PATTERNS + ["*.bin"])
        check_model_dir(path)
        ref = _ref(spec, "hub", path, dtype, source=repo_id, commit=path.name, requested_revision=revision)
    # the store records the commit the snapshot is (huggingface_hub names snapshot folders by commit id),
    # not the branch or tag typed, which may move
    return dataclasses.replace(ref, revision=path.name if _COMMIT.match(path.name) else revision)


def _resolve_fake(spec: str) -> ModelRef:
    f = Path(spec[len("fake:") :]).expanduser()
    if not f.is_file():
        raise UserError(f"{spec}: fake-backend script {f} does not exist (expected a JSON file)")
    from .fake_script import load

    script = load(f)
    return ModelRef(
        spec=spec,
        kind="fake",
        path=str(f.resolve()),
        content_hash=file_sha256(f),
        has_chat_template=bool(script.get("chat_template", True)),
        meta={"source": str(f.resolve()), "dtype": None, "name": script.get("name", f.stem)},
    )
