"""The backends of `forgetbench eval --backend`, each registered once here (`BACKENDS`): the function that
builds its lm-eval model (an `lm_eval.api.model.LM`) for a resolved model, and the capabilities the rest
of forgetbench asks about (`Backend`: CLI choices, device/dtype resolution, worker processes, which models
it runs, KL). "hf" and "vllm" are lm-eval's own HFLM and VLLM classes, "fake" the scripted FakeLM of tests
and demos: forgetbench never re-implements generation or loglikelihood. Heavy imports happen inside the
build functions, so the CLI and store start instantly.

Adding a backend: a `build(model, settings)` returning an lm-eval LM (heavy imports inside) and
`register(Backend("name", build, <flags>))` at the end of this module; `--backend name` is then offered
and runs end to end (tests/test_extension_backends.py does this from outside the module). Simplification:
registration is in-process (no plugin entry points): a backend registered elsewhere exists only where its
module was imported before `forgetbench.cli.main` ran (not in worker processes: no `cpu_workers` then).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from forgetbench.errors import UserError
from forgetbench.runtime.hardware import configure_threads
from forgetbench.records import EvalSettings, ModelRef

# vLLM's gpu_memory_utilization: its own default on a GPU; on CPU vLLM reads it as the share of RAM
# for weights + KV cache, and 0.9 of RAM fails its free-memory check on any machine running other things.
VLLM_MEMORY_SHARE = {"gpu": 0.9, "cpu": 0.3}


@dataclass(frozen=True)
class Backend:
    """One `--backend`: how it builds the lm-eval model, and what the rest of forgetbench may ask of it."""

    name: str
    build: Callable[[ModelRef, EvalSettings], object]  # -> an lm-eval LM for the model; heavy imports inside
    scripted: bool = False  # runs fake: scripts, and only them: no device, dtype or token distributions (no KL)
    vllm_engines: bool = False  # starts vLLM engines: gets a memory share; the KL pass samples the base with vLLM
    cpu_workers: bool = False  # on cpu, may score tasks in single-thread worker processes (forgetbench.eval.workers)

    @property
    def kl_sampler(self) -> str | None:
        """What forgetbench.kl.pair samples the base's completions with ("hf" or "vllm"; the KL pass itself
        is transformers either way); None: the backend has no token distributions, so no KL."""
        return None if self.scripted else "vllm" if self.vllm_engines else "hf"


BACKENDS: dict[str, Backend] = {}  # in registration order: the CLI's choices (filled at the end of this module)


def register(b: Backend) -> Backend:
    if b.name in BACKENDS:
        raise ValueError(f"backend {b.name!r} is already registered")
    BACKENDS[b.name] = b
    return b


def backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise UserError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}") from None


def scripted_backend() -> str:
    """The backend fake: scripts run on when --backend names one that cannot run them (the first scripted one)."""
    return next(b.name for b in BACKENDS.values() if b.scripted)


def chat_template_enabled(model: ModelRef, settings: EvalSettings) -> bool:
    """Chat formatting is used when asked for and the tokenizer has a template (base models don't)."""
    return bool(settings.chat_template and model.has_chat_template)


def resolved(settings: EvalSettings) -> EvalSettings:
    """`settings` with device, dtype and the vLLM memory share decided for this machine (forgetbench.runtime.hardware);
    what runs, caches and reports use. Idempotent."""
    from dataclasses import replace

    b = backend(settings.backend)
    if b.scripted:
        return settings
    from forgetbench.runtime.hardware import resolve_device, resolve_dtype

    device = resolve_device(settings.device)
    share = settings.gpu_memory_utilization
    if share is None and b.vllm_engines:
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
    from forgetbench.models.resolve import is_fake

    b = backend(settings.backend)
    if not b.scripted:  # callers other than eval: resolve device, dtype auto, memory share here too
        settings = resolved(settings)
    if b.scripted != is_fake(model):
        raise UserError(
            f"{model.spec}: fake: scripts run only with --backend fake (and the fake backend runs only fake: scripts)"
        )
    return b.build(model, settings)


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


def _build_fake(model: ModelRef, settings: EvalSettings):
    from forgetbench.eval.fake import FakeLM

    return FakeLM.from_file(model.path)


def _build_vllm(model: ModelRef, settings: EvalSettings):
    vllm_model = vllm_import()
    engine = vllm_engine_args(settings)
    # vLLM schedules its own continuous batches; a fixed HF-style batch size only slows it down.
    # data_parallel_size > 1: lm-eval starts no engine here but one per replica in Ray actors (each
    # reserving tensor_parallel_size GPUs), built from the same engine arguments.
    return vllm_model(pretrained=model.path, data_parallel_size=settings.data_parallel_size, batch_size="auto",
                      trust_remote_code=False, **engine)


# ---------------------------------------------- vLLM (importing it, either distribution: forgetbench.runtime.vllm_support)


def vllm_import():
    """lm-eval's VLLM class, importable with either vLLM distribution; a UserError names the real cause."""
    from forgetbench.runtime import vllm_support  # importlib.metadata: not at CLI start

    vllm_support.vllm_module()
    try:
        from lm_eval.models.vllm_causallms import VLLM
    except ImportError as e:
        raise UserError(f"cannot import lm-eval's vLLM model with the installed vllm "
                        f"({type(e).__name__}: {e}); lm-eval and vLLM versions may not match") from e
    return VLLM


def release(lm) -> None:
    """Free what an lm-eval model built by build_lm holds (a vLLM engine is stopped at once)."""
    engine = getattr(lm, "model", None)
    if engine is not None and hasattr(engine, "llm_engine"):  # lm-eval's VLLM keeps its vllm.LLM there
        from forgetbench.runtime.vllm_support import shutdown_vllm

        shutdown_vllm(engine)


# ------------------------------------------------------------------------------ the registered backends

register(Backend("hf", _build_hf, cpu_workers=True))
register(Backend("vllm", _build_vllm, vllm_engines=True))
register(Backend("fake", _build_fake, scripted=True))
