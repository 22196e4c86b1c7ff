"""Supervised fine-tuning (SFT) of a causal LM on prompt/completion pairs, via TRL's SFTTrainer.

Used by `forgetbench demo` to make a tuned checkpoint, and the seed of the reference training module.

Simplifications (on purpose, nanochat style):
- full fine-tuning only (no LoRA), single process, CPU or whatever device the Trainer picks;
- one conversational turn per example: prompt -> [user message], completion -> [assistant message], so the
  tokenizer's OWN chat template (the one evaluation uses) renders the text, and TRL's completion-only loss
  puts label -100 on every prompt token (system preamble, user turn, "<|im_start|>assistant\\n");
- constant hyper-parameters: linear decay, no warmup, no eval split, no checkpoints, no early stopping;
- fp32 master weights with bf16 autocast when dtype="bfloat16" (pure-bf16 AdamW rounds small updates
  away); the saved checkpoint is cast to `dtype`;
- no hub access at all: base_dir is a local directory, report_to none, never pushed.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path

from forgetbench.errors import UserError

RECIPE_FILE = "forgetbench_train.json"
LOG_FILE = "forgetbench_train_log.jsonl"

# Settings for `forgetbench demo` (SmolLM2-135M-Instruct, 160 lite-countdown examples of ~160 tokens, 2 CPU cores).
# Full fine-tuning costs ~38 CPU-s per step of 8 examples, so the time budget (~2 min) is a step cap, not data
# size: 8 steps at lr 1e-4 took the loss 1.54 -> 0.26 and greedy answers from 0/8 to 6/8 "<answer>" format.
DEMO_RECIPE = {"epochs": 1, "lr": 1e-4, "batch_size": 8, "max_length": 256, "max_steps": 6}


def to_conversational(example: dict) -> dict:
    """{"prompt": str, "completion": str} -> TRL's conversational prompt-completion row."""
    if not isinstance(example.get("prompt"), str) or not isinstance(example.get("completion"), str):
        raise UserError(f"SFT example needs string 'prompt' and 'completion' fields, got keys {sorted(example)}")
    return {
        "prompt": [{"role": "user", "content": example["prompt"]}],
        "completion": [{"role": "assistant", "content": example["completion"]}],
    }


def build_trainer(base_dir, examples: list[dict], work_dir: Path, *, epochs=2, lr=1e-4, batch_size=8,
                  max_length=256, max_steps=None, seed=0, dtype="bfloat16", log_path=None):
    """SFTTrainer with the model loaded from base_dir and the examples already tokenized and labelled."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    if not examples:
        raise UserError("SFT needs at least one example")
    if dtype not in ("bfloat16", "float32"):
        raise UserError(f"dtype must be 'bfloat16' or 'float32', got {dtype!r}")
    dataset = Dataset.from_list([to_conversational(e) for e in examples])  # validate before the slow load
    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    if tokenizer.chat_template is None:
        raise UserError(f"{base_dir}: tokenizer has no chat template; SFT trains in chat format")
    # fp32 master weights: bf16 autocast still gives the bf16 matmul speed (see module docstring).
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(work_dir),
        num_train_epochs=epochs,
        max_steps=max_steps or -1,  # a cap wins over epochs: bounds the demo's CPU time whatever the data size
        learning_rate=lr,
        per_device_train_batch_size=batch_size,
        max_length=max_length,
        completion_only_loss=True,
        seed=seed,
        data_seed=seed,
        bf16=dtype == "bfloat16",
        activation_checkpointing=False,  # small models on CPU: memory is plentiful, recompute only costs time
        warmup_steps=0,
        lr_scheduler_type="linear",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        push_to_hub=False,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=True,
        dataset_num_proc=None,
    )

    class JsonlLog(TrainerCallback):  # one JSON line per logged step (logging_steps=1)
        def on_log(self, args, state, control, logs=None, **kwargs):
            if log_path and logs and "loss" in logs:
                row = {"step": state.global_step, "epoch": logs.get("epoch"), "loss": logs["loss"],
                       "lr": logs.get("learning_rate"), "grad_norm": logs.get("grad_norm")}
                with open(log_path, "a") as f:
                    f.write(json.dumps(row) + "\n")

    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                      callbacks=[JsonlLog()])


def sft(base_dir: str | Path, examples: list[dict], out_dir: Path, *, epochs=2, lr=1e-4, batch_size=8,
        max_length=256, max_steps: int | None = None, seed=0, dtype="bfloat16",
        log_path: Path | None = None) -> Path:
    """Fine-tune base_dir on examples, write the model + tokenizer + recipe + log to out_dir; return out_dir.

    Training happens in `<out_dir>.tmp`, renamed to out_dir only once everything is written, so out_dir
    either holds a complete checkpoint or does not exist (an existing out_dir is replaced only after the
    new one is complete). log_path (optional) receives the per-step log while training runs; a copy always
    ends up in out_dir/forgetbench_train_log.jsonl.
    """
    import torch

    base_dir, out_dir = Path(base_dir), Path(out_dir)
    if not (base_dir / "config.json").is_file():
        raise UserError(f"SFT base {base_dir} is not a local Hugging Face model directory (no config.json)")
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():  # leftover of an interrupted run
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    log = Path(log_path) if log_path else tmp / LOG_FILE
    log.write_text("")
    hparams = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "max_length": max_length,
               "max_steps": max_steps, "seed": seed, "dtype": dtype}

    start = time.time()
    try:
        trainer = build_trainer(base_dir, examples, tmp / "trainer", log_path=log, **hparams)
        result = trainer.train()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    wall = time.time() - start

    model = trainer.model.to(getattr(torch, dtype))
    model.save_pretrained(tmp)
    trainer.processing_class.save_pretrained(tmp)
    shutil.rmtree(tmp / "trainer", ignore_errors=True)
    if log != tmp / LOG_FILE:
        shutil.copyfile(log, tmp / LOG_FILE)
    steps = [json.loads(line) for line in (tmp / LOG_FILE).read_text().splitlines()]
    recipe = {
        "method": "sft",
        "base": str(base_dir.resolve()),
        "hyperparameters": hparams,
        "n_examples": len(examples),
        "steps": result.global_step,
        "final_loss": steps[-1]["loss"] if steps else None,
        "mean_loss": result.training_loss,
        "wall_seconds": round(wall, 1),
        "versions": _versions(),
    }
    (tmp / RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n")
    if out_dir.exists():  # replace: move the old one aside first, so a crash never leaves no checkpoint
        old = out_dir.with_name(out_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old)
    else:
        tmp.rename(out_dir)
    return out_dir


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("forgetbench", "torch", "transformers", "trl", "datasets"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out
