"""A checkpoint folder's identity: which files decide its outputs, their content hash (cached beside
the folder), and the atomic writes that keep a half-written folder from ever looking complete."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from forgetbench import paths


# Files whose bytes decide a model's outputs. Top level only: training output dirs carry
# checkpoint-*/ subdirs and optimizer states that are not this model.
WEIGHT_SUFFIXES = (".safetensors", ".bin")


TOKENIZER_FILES = {
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
}


TEMPLATE_FILES = {"chat_template.jinja", "chat_template.json"}


# generation_config.json is included although not in the brief's list: its eos_token_id list
# changes where HF generation stops.
CONFIG_FILES = {"config.json", "generation_config.json"}


NOT_WEIGHTS = {"training_args.bin", "optimizer.bin", "scheduler.bin"}  # Trainer state, not model


# Keys transformers rewrites on every save; dropping them keeps a re-saved model the same model.
VOLATILE_KEYS = {
    "transformers_version",
    "_name_or_path",
    "_model_name_or_path",
    "_commit_hash",
    "is_local",
    "local_files_only",
}


ADAPTER_VOLATILE = VOLATILE_KEYS | {"base_model_name_or_path", "revision", "peft_version", "inference_mode"}


def weight_files(p: Path) -> list[Path]:
    return [f for f in p.iterdir() if f.is_file() and f.suffix in WEIGHT_SUFFIXES and f.name not in NOT_WEIGHTS]


def hashed_files(p: Path) -> list[Path]:
    """The files content_hash covers, sorted by relative path."""
    out = []
    for f in p.iterdir():
        if not f.is_file():
            continue
        name = f.name
        if (
            (f.suffix in WEIGHT_SUFFIXES and name not in NOT_WEIGHTS)
            or name in TOKENIZER_FILES
            or name in TEMPLATE_FILES
            or name in CONFIG_FILES
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
            data = normalized_json(f)
            h.update(len(data).to_bytes(8, "little") + data)
        else:
            h.update(f.stat().st_size.to_bytes(8, "little"))
            _update_from_file(h, f)
    digest = h.hexdigest()
    atomic_write_text(sidecar, digest)
    return digest


def normalized_json(f: Path, volatile: set[str] = VOLATILE_KEYS) -> bytes:
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
    atomic_write_text(sidecar, h.hexdigest())
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
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
