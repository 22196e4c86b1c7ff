"""The training methods of `forgetbench train`, one registry entry each (`METHODS`).

Read by the train command (its --method choices, the recipe loader's settings and defaults, the dispatch
to the method's trainer, the run record's wording), by the demo (its recipes' known settings) and by the
leaderboard's metadata schema (`method:` is a registered name or "other"). This module imports nothing
heavy and nothing else of forgetbench's: `forgetbench --help` and the leaderboard (which must not import
torch) import it.

Adding a method: write its trainer,
`fit(base_dir, recipe, work_dir, log, *, examples, scorer) -> (model, tokenizer, info)`, importing torch,
transformers or TRL inside it; `examples` are expert {"prompt", "completion"} pairs when the method sets
`expert_data`, else None, and `scorer` is the forgetbench.eval.scorer.TaskScorer over the training rows
(its docs, prompts and reward); `info` is {"steps": int, "examples": [dict], "rounds": [dict]} (the
training data written next to the checkpoint, per-round sampling counts). Then register it at the end of
this module, e.g. `register(Method("my-sft", my_fit, {**COMMON, **SFT_KEYS, "my_knob": 1}, "what it
trains on"))`. `forgetbench train --method my-sft` then works with the defaults (recipe files under
recipes/ are optional examples), and submissions may declare `method: my-sft`.
tests/test_extension_methods.py registers a method from outside this module and trains with it.

Simplification: registration is in-process (no plugin entry points): a method registered elsewhere exists
only where its module was imported before `forgetbench.cli.main` ran.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

OTHER = "other"  # a leaderboard entry's `method` when it was trained otherwise: no registered method may be named so
# Recipe settings and their defaults, by family (recipes/README.md documents each key).
COMMON = {"seed": 0, "dtype": "auto", "n_train": 160, "data_seed": 20251}
SFT_KEYS = {"lr": 1e-4, "epochs": 1, "batch_size": 8, "grad_accum": 1, "max_length": 512, "max_steps": None,
            "scheduler": "linear", "warmup_ratio": 0.0, "max_grad_norm": 1.0}
SAMPLE_KEYS = {"samples_per_prompt": 4, "temperature": 1.0, "max_new_tokens": None, "sample_batch_size": 32}
RL_KEYS = {"lr": 1e-6, "epochs": 1, "batch_size": 8, "grad_accum": 1, "max_steps": None, "scheduler": "constant",
           "warmup_ratio": 0.0, "max_grad_norm": 1.0, "temperature": 1.0, "num_generations": 4,
           "max_completion_length": None, "beta": 0.0, "loss_type": "dapo", "scale_rewards": "group",
           "num_iterations": 1, "use_vllm": False}


@dataclass(frozen=True)
class Method:
    """One `--method`: its trainer, its recipe settings, and what the train command asks of it."""

    name: str
    fit: Callable[..., tuple]  # (base_dir, recipe, work_dir, log, *, examples, scorer) -> (model, tokenizer, info)
    defaults: Mapping[str, Any]  # every recipe setting it takes, with its default (None: an optional integer)
    trains_on: str  # its training data in words, for forgetbench_train.json's training_data
    expert_data: bool = False  # trains on expert pairs: the task's solver, or --data {prompt, response} pairs
    reward: bool = False  # learns from the task's eval scorer as a reward: warn when no reward ever varied

    def __post_init__(self):
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))  # frozen all the way down


METHODS: dict[str, Method] = {}  # in registration order: the CLI's choices (filled at the end of this module)


def register(m: Method) -> Method:
    if m.name in METHODS or m.name == OTHER:
        raise ValueError(f"training method {m.name!r} is already registered (or reserved)")
    METHODS[m.name] = m
    return m


# ------------------------------------------------------------------ the trainers (heavy imports inside)


def _sft(base_dir, recipe, work_dir, log, *, examples, scorer):
    from forgetbench.train.sft import run_sft_rounds

    return run_sft_rounds(base_dir, recipe, work_dir, log, examples=examples, scorer=scorer)


def _onpolicy_sft(base_dir, recipe, work_dir, log, *, examples, scorer):
    from forgetbench.train.sft import run_sft_rounds

    return run_sft_rounds(base_dir, recipe, work_dir, log, examples=examples, scorer=scorer, onpolicy=True)


def _grpo(base_dir, recipe, work_dir, log, *, examples, scorer):
    from forgetbench.train.rl import train_grpo

    return train_grpo(base_dir, recipe, scorer, work_dir, log)


# The four methods of "Retaining by Doing" (Chen et al. 2025); forgetbench.train.run describes them.
register(Method("sft", _sft, {**COMMON, **SFT_KEYS}, "expert responses", expert_data=True))
register(Method("self-sft", _sft, {**COMMON, **SFT_KEYS, **SAMPLE_KEYS}, "correct samples of the base model"))
register(Method("onpolicy-sft", _onpolicy_sft, {**COMMON, **SFT_KEYS, **SAMPLE_KEYS},
                "correct samples of the current model, resampled every epoch"))
register(Method("rl", _grpo, {**COMMON, **RL_KEYS}, "prompts (GRPO, reward = the task's eval scorer)", reward=True))
