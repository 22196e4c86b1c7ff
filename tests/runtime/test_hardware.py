"""dtype auto, threads and `forgetbench info` (forgetbench.runtime.hardware): each capability case with the probe
stubbed, an explicit dtype winning, and the resolved dtype reaching runs, recipes and records."""

from __future__ import annotations

import json

import pytest

from forgetbench.runtime import hardware
from forgetbench.errors import UserError
from forgetbench.runtime.hardware import Capabilities, resolve_dtype
from forgetbench.train import recipe as recipes


@pytest.mark.parametrize("caps, device, want", [
    (Capabilities(), "cpu", "float32"),  # AVX2-only CPU: bf16 would be emulated
    (Capabilities(cpu_native_bf16="AMX-BF16"), "cpu", "bfloat16"),
    (Capabilities(cpu_native_bf16="AVX512-BF16"), "cpu", "bfloat16"),
    (Capabilities(cuda=True, cuda_bf16=True), "cuda", "bfloat16"),
    (Capabilities(cuda=True, cuda_bf16=True), "cuda:1", "bfloat16"),
    (Capabilities(cuda=True, cuda_bf16=False), "cuda", "float16"),  # e.g. a T4 or V100
    (Capabilities(mps=True), "mps", "float16"),
    (Capabilities(cuda=True, cuda_bf16=True), "cpu", "float32"),  # the device asked for decides, not the machine
])
def test_auto_per_capability(caps, device, want):
    choice = resolve_dtype("auto", device, caps)
    assert choice.dtype == want and choice.requested == "auto" and choice.reason.startswith("auto:")


@pytest.mark.parametrize("explicit", ["bfloat16", "float16", "float32"])
def test_explicit_dtype_wins(explicit, monkeypatch):
    def no_probe():
        raise AssertionError("an explicit dtype must not consult the hardware")

    monkeypatch.setattr(hardware, "capabilities", no_probe)
    for caps in (Capabilities(), Capabilities(cpu_native_bf16="AMX-BF16"), None):
        assert resolve_dtype(explicit, "cpu", caps).dtype == explicit


def test_unknown_dtype_is_a_user_error():
    with pytest.raises(UserError, match="--dtype 'int8'"):
        resolve_dtype("int8")


def test_auto_uses_torch_cpu_checks(monkeypatch):
    import torch.cpu as tc

    monkeypatch.setattr(tc, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(tc, "_is_avx512_bf16_supported", lambda: True)
    assert hardware.capabilities().cpu_native_bf16 == "AVX512-BF16"
    monkeypatch.setattr(tc, "_is_avx512_bf16_supported", lambda: False)
    assert hardware.capabilities().cpu_native_bf16 is None
    assert resolve_dtype("auto", "cpu").dtype == "float32"


def test_threads_follow_omp_then_affinity(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert hardware.threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "0")  # nonsense: ignored
    assert hardware.threads() == hardware.cores()
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert hardware.cores() == 1 and hardware.threads() == 1


def test_configure_threads_never_exceeds_usable_cores(monkeypatch):
    import torch

    old = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    try:
        assert hardware.configure_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(old)


def test_eval_settings_default_is_auto_and_resolved_before_runs(monkeypatch):
    from forgetbench.eval.run import resolved_dtype
    from forgetbench.records import EvalSettings

    assert EvalSettings().dtype == "auto"
    monkeypatch.setattr(hardware, "capabilities", lambda: Capabilities(cpu_native_bf16="AMX-BF16"))
    assert resolved_dtype(EvalSettings()).dtype == "bfloat16"
    monkeypatch.setattr(hardware, "capabilities", lambda: Capabilities())
    assert resolved_dtype(EvalSettings()).dtype == "float32"
    assert resolved_dtype(EvalSettings(dtype="bfloat16")).dtype == "bfloat16"
    assert resolved_dtype(EvalSettings(backend="fake")).dtype == "auto"  # scripted outputs: nothing computed


def test_recipes_default_to_auto_and_resolve_into_the_run_key(monkeypatch, tmp_path):
    from forgetbench.train import run as train

    r = recipes.load_recipe(recipes.recipes_dir() / "demo" / "sft.yaml", None)
    assert r["dtype"] == "auto"
    monkeypatch.setattr(hardware, "capabilities", lambda: Capabilities())
    fp32 = train.with_dtype(r)
    monkeypatch.setattr(hardware, "capabilities", lambda: Capabilities(cpu_native_bf16="AMX-BF16"))
    bf16 = train.with_dtype(r)
    assert (fp32["dtype"], bf16["dtype"]) == ("float32", "bfloat16")
    assert train.with_dtype({**r, "dtype": "float32"})["dtype"] == "float32"
    # Checkpoints trained in different dtypes are different models: different folders.
    assert train.default_out("sft", "t", "h" * 64, fp32, None) != train.default_out("sft", "t", "h" * 64, bf16, None)


def test_info_prints_what_a_bug_report_needs(capsys):
    from forgetbench.cli import main

    assert main(["info", "--json", "--no-measure"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["cpu"]["model"] and set(d["cpu"]["flags"]) == set(hardware.FLAGS)
    assert d["dtype_auto"]["dtype"] in ("bfloat16", "float16", "float32") and d["dtype_auto"]["reason"]
    assert d["threads"]["model_job_threads"] >= 1 and d["versions"]["torch"] and d["versions"]["transformers"]
    assert "FORGETBENCH_HOME" in d["paths"]
    assert main(["info", "--no-measure"]) == 0
    text = capsys.readouterr().out
    assert "dtype auto" in text and "CPU flags" in text and "avx2" in text


def test_describe_names_cpu_cores_and_dtype():
    line = hardware.describe("float32")
    assert line.startswith("CPU: ") and "cores" in line and line.endswith("dtype float32")
