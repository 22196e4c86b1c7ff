"""Build the lm-eval model object (an `lm_eval.api.model.LM`) that scores a resolved model.

forgetbench never re-implements generation or loglikelihood: "hf" and "vllm" are lm-eval's own
HFLM and VLLM classes, "fake" is the scripted FakeLM used by tests and demos. All heavy imports
happen here, inside the function, so the CLI and store start instantly.
"""

from __future__ import annotations

import random

from forgetbench.errors import UserError
from forgetbench.hardware import configure_threads
from forgetbench.records import EvalSettings, ModelRef

BACKENDS = ("hf", "vllm", "fake")


def chat_template_enabled(model: ModelRef, settings: EvalSettings) -> bool:
    """Chat formatting is used when asked for and the tokenizer has a template (base models don't)."""
    return bool(settings.chat_template and model.has_chat_template)


def build_lm(model: ModelRef, settings: EvalSettings):
    if settings.dtype == "auto" and settings.backend != "fake":  # callers other than eval: resolve here too
        from dataclasses import replace

        from forgetbench.hardware import resolve_dtype

        settings = replace(settings, dtype=resolve_dtype("auto", settings.device).dtype)
    if settings.backend == "fake" or model.kind == "fake":
        if settings.backend != "fake" or model.kind != "fake":
            raise UserError(
                f"{model.spec}: fake: scripts run only with --backend fake (and the fake backend runs only fake: scripts)"
            )
        from forgetbench.fake import FakeLM

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
    import torch
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
    try:
        from lm_eval.models.vllm_causallms import VLLM
    except ImportError as e:
        raise UserError(
            f"the vllm backend needs `pip install forgetbench[vllm]` on a machine with a GPU ({e})"
        ) from e
    # vLLM schedules its own continuous batches; a fixed HF-style batch size only slows it down.
    return VLLM(
        pretrained=model.path,
        dtype=settings.dtype,
        tensor_parallel_size=settings.tensor_parallel_size,
        data_parallel_size=settings.data_parallel_size,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        seed=settings.seed,
        batch_size="auto",
        trust_remote_code=False,
    )
