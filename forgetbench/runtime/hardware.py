"""What this machine computes fast: the dtype `--dtype auto` resolves to, the thread count every model job
uses, and the one-line machine description that benchmarks and `forgetbench info` print.

dtype auto (the default of eval, KL, training, recipes and the demo):
- CUDA: bfloat16 where `torch.cuda.is_bf16_supported()`, else float16;
- MPS: float16 (Metal's native half type; bfloat16 only on recent macOS, and slower there);
- CPU: bfloat16 only where the CPU computes it natively (AMX-BF16 or AVX512-BF16, asked of torch's own
  CPU feature checks, /proc/cpuinfo as a fallback), float32 otherwise. On AVX2-only CPUs bfloat16 is
  emulated: measured 4-7x slower than float32 on an AMD EPYC (generation, forward, backward);
  `forgetbench info` measures the ratio on the machine it runs on.
An explicit dtype always wins. The resolved dtype, never "auto", is what runs record and cache keys use.
Device auto (the default of eval, KL included): the first CUDA GPU when there is one, else the CPU.

Threads: the cores this process may use (affinity and cgroup aware), unless OMP_NUM_THREADS says
otherwise; tokenizer threads are turned off (the Rust tokenizers would start one per core on top of
torch's). Simplification: one process uses all of its cores; run several jobs side by side by giving
each its own cores (`taskset -c 0 forgetbench ...`) or OMP_NUM_THREADS.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass

DTYPES = ("auto", "bfloat16", "float16", "float32")
# CPU features that decide how fast bfloat16/float32 matmuls run; shown by `forgetbench info`.
FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


@dataclass(frozen=True)
class Capabilities:
    """What the dtype choice depends on; tests pass their own."""

    cuda: bool = False
    cuda_bf16: bool = False
    mps: bool = False
    cpu_native_bf16: str | None = None  # the feature that makes it native ("AMX-BF16", "AVX512-BF16"), or None


@dataclass(frozen=True)
class DtypeChoice:
    dtype: str  # bfloat16 | float16 | float32
    requested: str
    reason: str

    def describe(self) -> str:
        return f"dtype {self.dtype} ({self.reason})"


@dataclass(frozen=True)
class CPU:
    model: str
    flags: tuple[str, ...]  # those of FLAGS the CPU has
    cores: int  # usable by this process


def cores() -> int:
    """Cores this process may use (affinity/cgroup aware, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS
        return os.cpu_count() or 1


def threads() -> int:
    """Threads a model job uses: OMP_NUM_THREADS when set to a positive number, else the usable cores."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else cores()


def configure_threads() -> int:
    """Set torch's intra-op threads to `threads()` and keep tokenizers single-threaded; returns the count.

    torch defaults to the machine's physical core count, which in a container or under `taskset` can
    exceed the cores we may use; oversubscribed CPU matmuls run several times slower."""
    import torch

    n = threads()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@functools.lru_cache(maxsize=1)
def cpu() -> CPU:
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and name in ("", platform.machine(), platform.processor()):
                    name = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # not Linux
        pass
    return CPU(model=name or "unknown", flags=tuple(f for f in FLAGS if f in flags), cores=cores())


def _torch_cpu_bf16() -> str | None:
    """Native bfloat16 on this CPU per torch's own feature checks (torch.cpu), /proc/cpuinfo as a fallback."""
    try:
        import torch.cpu as tc

        # AMX tiles usable (torch also asks the OS for permission): every AMX CPU so far has AMX-BF16.
        if tc._is_amx_tile_supported() and tc._init_amx():
            return "AMX-BF16"
        if tc._is_avx512_bf16_supported():
            return "AVX512-BF16"
        return None
    except (ImportError, AttributeError):  # an older or newer torch without these private checks
        flags = cpu().flags
        return "AMX-BF16" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else None


def capabilities() -> Capabilities:
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return Capabilities(cuda=cuda, cuda_bf16=cuda and torch.cuda.is_bf16_supported(), mps=mps,
                        cpu_native_bf16=_torch_cpu_bf16())


def resolve_dtype(requested: str | None = "auto", device: str = "cpu", caps: Capabilities | None = None) -> DtypeChoice:
    """The dtype to compute in on `device`: `requested` unless it is "auto" (see the module docstring)."""
    requested = requested or "auto"
    if requested not in DTYPES:
        from forgetbench.errors import UserError

        raise UserError(f"--dtype {requested!r}: choose one of {', '.join(DTYPES)}")
    if requested != "auto":
        return DtypeChoice(requested, requested, "as asked")
    caps = caps or capabilities()
    kind = device.split(":")[0]
    if kind == "cuda":
        if caps.cuda_bf16:
            return DtypeChoice("bfloat16", requested, "auto: this GPU supports bfloat16")
        return DtypeChoice("float16", requested, "auto: this GPU has no bfloat16")
    if kind == "mps":
        return DtypeChoice("float16", requested, "auto: Apple GPU (MPS) computes float16 natively")
    if caps.cpu_native_bf16:
        return DtypeChoice("bfloat16", requested, f"auto: this CPU computes bfloat16 natively ({caps.cpu_native_bf16})")
    return DtypeChoice("float32", requested,
                       "auto: this CPU has no native bfloat16 (no AMX-BF16 or AVX512-BF16), where bfloat16 is emulated "
                       "and several times slower")


def resolve_device(requested: str | None = "auto", caps: Capabilities | None = None) -> str:
    """The device models run on: `requested` unless it is "auto" (the default of eval): the first CUDA GPU
    when there is one, else the CPU. Simplification: auto never picks MPS (pass --device mps)."""
    requested = (requested or "auto").strip()
    if requested != "auto":
        return requested
    caps = caps or capabilities()
    return "cuda" if caps.cuda else "cpu"


def training_device() -> str:
    """Where the Trainer runs: the first GPU if any, else the CPU (MPS: as the Trainer decides)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def describe(dtype: str | None = None) -> str:
    """One line naming the machine, for every printed figure: CPU, its relevant flags, cores, threads, dtype."""
    c = cpu()
    flags = ", ".join(c.flags) if c.flags else "no AVX2"
    line = f"CPU: {c.model} ({flags}); {c.cores} usable cores, {threads()} threads"
    return f"{line}; dtype {dtype}" if dtype else line


def measure_bf16_ratio(size: int = 512, reps: int = 5) -> float:
    """Seconds of a bfloat16 matmul over a float32 one of the same shape on this CPU (median of reps)."""
    import time

    import torch

    def run(dt) -> float:
        a, b = torch.randn(size, size, dtype=dt), torch.randn(size, size, dtype=dt)
        a @ b  # warm-up: kernels are selected and packed on first use
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            for _ in range(4):
                a @ b
            times.append(time.perf_counter() - t)
        return sorted(times)[len(times) // 2]

    return run(torch.bfloat16) / run(torch.float32)
