"""Supervised fine-tuning (SFT) of a causal LM on prompt/completion pairs, via TRL's SFTTrainer.

Used by `forgetbench train` (and so `forgetbench demo`) for its three
SFT methods (`run_sft_rounds`: expert data, or samples of the model itself filtered by the task's scorer,
drawn once or at the start of every epoch).

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
import math
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from forgetbench.errors import UserError
from forgetbench.paths import TRAIN_RECORD

RECIPE_FILE = TRAIN_RECORD
LOG_FILE = "forgetbench_train_log.jsonl"


def to_conversational(example: dict) -> dict:
    """{"prompt": str | messages, "completion": str} -> TRL's conversational prompt-completion row.

    A string prompt becomes one user turn; a list of {"role", "content"} messages (what
    forgetbench.eval.scorer.TaskScorer.messages gives: the exact turns lm-eval sends) is used as is."""
    prompt = example.get("prompt")
    is_messages = isinstance(prompt, list) and bool(prompt) and all(
        isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") for m in prompt)
    if not (isinstance(prompt, str) or is_messages) or not isinstance(example.get("completion"), str):
        raise UserError(f"SFT example needs string 'prompt' and 'completion' fields, got keys {sorted(example)}")
    return {
        "prompt": [{"role": "user", "content": prompt}] if isinstance(prompt, str)
        else [{"role": m["role"], "content": m["content"]} for m in prompt],
        "completion": [{"role": "assistant", "content": example["completion"]}],
    }


def jsonl_logger(log_path, extra: dict | None = None, step_offset: int = 0):
    """A TrainerCallback writing one JSON line per logged training step (logging_steps=1): step, epoch,
    loss, lr, grad_norm, and whatever else the trainer logs (GRPO: rewards, kl, completion lengths)."""
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        def __init__(self):
            self.extra, self.step_offset = dict(extra or {}), step_offset

        def on_log(self, args, state, control, logs=None, **kwargs):
            if log_path and logs and "loss" in logs:
                row = {"step": state.global_step + self.step_offset, **self.extra, "epoch": logs.get("epoch"),
                       "loss": logs["loss"], "lr": logs.get("learning_rate"), "grad_norm": logs.get("grad_norm")}
                row.update({k: v for k, v in logs.items() if k not in ("loss", "learning_rate", "grad_norm",
                                                                       "epoch") and isinstance(v, (int, float))})
                with open(log_path, "a") as f:
                    f.write(json.dumps(row) + "\n")

    return JsonlLog()


# Config fields a supported transformers/TRL may lack, each with the value it would have been set to: newer
# versions made them explicit. Every other field is required: a missing one is an error, never dropped.
OPTIONAL_FIELDS = {"activation_checkpointing": False}  # newer than transformers 5.19, whose default is no recomputation too


def make_config(cls, fields: dict):
    """cls(**fields) with only the fields the installed class has: an OPTIONAL_FIELDS entry it lacks is
    left out (it only restates that version's behaviour); any other unknown field is a UserError naming
    the class and the installed versions (the config would otherwise mean something else)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(k for k in fields if k not in names and k not in OPTIONAL_FIELDS)
    if unknown:
        from importlib.metadata import version

        raise UserError(f"{cls.__name__} of the installed trl {version('trl')} / transformers "
                        f"{version('transformers')} has no field(s) {', '.join(unknown)}: upgrade them "
                        "(pyproject.toml has the versions forgetbench runs with)")
    return cls(**{k: v for k, v in fields.items() if k in names})


def sft_config(work_dir, *, epochs=2, lr=1e-4, batch_size=8, max_length=256, max_steps=None, seed=0,
               dtype="bfloat16", grad_accum=1, scheduler="linear", warmup_ratio=0.0, max_grad_norm=1.0):
    """TRL's SFTConfig for build_trainer (no model needed: benchmarks/oldest_deps.py builds it alone)."""
    import torch
    from trl import SFTConfig

    return make_config(SFTConfig, dict(
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
        fp16=dtype == "float16",  # GPUs without bfloat16 (dtype auto); mixed precision needs a GPU
        activation_checkpointing=False,  # small models on CPU: memory is plentiful, recompute only costs time
        gradient_accumulation_steps=grad_accum,
        warmup_steps=float(warmup_ratio),  # transformers 5: a float in [0, 1) is a ratio of the total steps
        lr_scheduler_type=scheduler,
        max_grad_norm=max_grad_norm,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        push_to_hub=False,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=True,
        dataset_num_proc=None,
    ))


def build_trainer(base_dir, examples: list[dict], work_dir: Path, *, epochs=2, lr=1e-4, batch_size=8,
                  max_length=256, max_steps=None, seed=0, dtype="bfloat16", log_path=None, grad_accum=1,
                  scheduler="linear", warmup_ratio=0.0, max_grad_norm=1.0, model=None, tokenizer=None,
                  optimizers=(None, None), logger=None, desc="sft"):
    """SFTTrainer with the model loaded from base_dir and the examples already tokenized and labelled.

    `model`/`tokenizer` (already loaded, fp32) and `optimizers` let a caller keep training the same
    in-memory model and optimizer across several trainers (forgetbench.train.run's on-policy rounds);
    `logger` replaces the default per-step JSONL callback."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTTrainer

    if not examples:
        raise UserError("SFT needs at least one example")
    if dtype not in ("bfloat16", "float16", "float32"):
        raise UserError(f"dtype must be bfloat16, float16 or float32 (resolve 'auto' first), got {dtype!r}")
    dataset = Dataset.from_list([to_conversational(e) for e in examples])  # validate before the slow load
    set_seed(seed)
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(base_dir)
    if tokenizer.chat_template is None:
        raise UserError(f"{base_dir}: tokenizer has no chat template; SFT trains in chat format")
    # fp32 master weights: bf16 autocast still gives the bf16 matmul speed (see module docstring).
    model = model if model is not None else AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    args = sft_config(work_dir, epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length,
                      max_steps=max_steps, seed=seed, dtype=dtype, grad_accum=grad_accum, scheduler=scheduler,
                      warmup_ratio=warmup_ratio, max_grad_norm=max_grad_norm)

    from forgetbench.runtime.progress import quiet_trainer

    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[logger or jsonl_logger(log_path)], optimizers=optimizers)
    return quiet_trainer(trainer, desc)


@contextmanager
def staging(out_dir: Path):
    """Yield `<out_dir>.tmp` to write a checkpoint into; on success it replaces out_dir (the old one is
    moved aside first, so a crash never leaves no checkpoint), on any error it is removed."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():  # leftover of an interrupted run
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(tmp / "trainer", ignore_errors=True)  # Trainer's scratch dir is not part of the checkpoint
    if out_dir.exists():
        old = out_dir.with_name(out_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old)
    else:
        tmp.rename(out_dir)


def save_checkpoint(model, tokenizer, out: Path, dtype: str) -> None:
    """Model cast to `dtype` + tokenizer (with its chat template): a plain HF dir `forgetbench eval` loads."""
    import torch

    model.to(getattr(torch, dtype)).save_pretrained(out)
    tokenizer.save_pretrained(out)


# ------------------------------------------------------------------------------------ sampling


def sample_responses(model, tokenizer, prompts: list[list[dict]], *, n: int, max_new_tokens: int,
                     temperature: float, batch_size: int, seed: int, dtype: str) -> list[list[str]]:
    """n sampled responses per chat prompt from `model` as it is now (HF generate, batched, left-padded;
    pure temperature sampling: no top-k/top-p), decoded without special tokens like lm-eval does."""
    import torch

    from forgetbench.runtime.progress import bar

    texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in prompts]
    per_call = max(1, batch_size // n)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    out: list[list[str]] = []
    try:
        for i in bar(range(0, len(texts), per_call), desc=f"sampling {n} x {len(texts)} prompts", unit="batch"):
            enc = tokenizer(texts[i:i + per_call], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad(), torch.autocast(model.device.type, dtype=getattr(torch, dtype), enabled=dtype != "float32"):
                gen = model.generate(**enc.to(model.device), do_sample=True, temperature=temperature, top_k=0,
                                     top_p=1.0, max_new_tokens=max_new_tokens, num_return_sequences=n,
                                     pad_token_id=tokenizer.pad_token_id, use_cache=True)  # Trainer may turn it off
            dec = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            out += [dec[j * n:(j + 1) * n] for j in range(len(dec) // n)]
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def keep_correct(scorer, responses: list[list[str]]) -> tuple[list[dict], dict]:
    """SFT examples from the samples that score full marks with the task's eval scorer."""
    kept, scores, solved = [], [], 0
    for doc, resps in zip(scorer.docs, responses, strict=True):
        good = []
        for text in resps:
            scores.append(scorer.score(doc, text))
            if scores[-1] >= 1.0 and scorer.keep_text(text).strip():
                good.append({"prompt": scorer.messages(doc), "completion": scorer.keep_text(text)})
        solved += bool(good)
        kept += good
    stats = {"sampled": len(scores), "kept": len(kept), "prompts": len(responses), "prompts_solved": solved,
             "mean_score": round(sum(scores) / len(scores), 4) if scores else 0.0}
    return kept, stats


# ------------------------------------------------------------------------------------ SFT loop


def _lr_factor(progress: float, r: dict) -> float:
    w = r["warmup_ratio"]
    if progress < w:
        return progress / w
    p = min(1.0, (progress - w) / (1 - w)) if w < 1 else 1.0
    return {"linear": 1 - p, "cosine": 0.5 * (1 + math.cos(math.pi * p)), "constant": 1.0}[r["scheduler"]]


def run_sft_rounds(base_dir: Path, r: dict, work: Path, log: Path, *, examples=None, scorer=None,
                   onpolicy: bool = False) -> tuple:
    """The SFT loop shared by sft / self-sft / onpolicy-sft; returns (model, tokenizer, info). Without
    `examples` it samples its own (filtered by `scorer`): once, or, `onpolicy`, before every epoch."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if r["scheduler"] not in ("linear", "cosine", "constant"):
        raise UserError(f"recipe scheduler: expected linear, cosine or constant, got {r['scheduler']!r}")
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=r["lr"], weight_decay=0.0)
    rounds, epochs_per_round = (r["epochs"], 1) if onpolicy else (1, r["epochs"])
    cap = math.ceil(r["max_steps"] / rounds) if r["max_steps"] else None
    info = {"rounds": [], "steps": 0, "examples": []}
    for k in range(rounds):
        stats = {"round": k}
        if examples is None:  # self-sft (k == 0 only) and onpolicy-sft: sample from the model as it is now
            prompts = [scorer.messages(d) for d in scorer.docs]
            resps = sample_responses(model, tok, prompts, n=r["samples_per_prompt"], temperature=r["temperature"],
                                     max_new_tokens=r["max_new_tokens"] or scorer.max_gen_toks,
                                     batch_size=r["sample_batch_size"], seed=r["seed"] + k, dtype=r["dtype"])
            batch, sampled = keep_correct(scorer, resps)
            stats.update(sampled)
            with open(log, "a") as f:
                f.write(json.dumps({"event": "sample", "step": info["steps"], **stats}) + "\n")
        else:
            batch = examples
        info["examples"] += [{"round": k, **e} for e in batch]
        steps = math.ceil(len(batch) * epochs_per_round / (r["batch_size"] * r["grad_accum"]))
        steps = min(steps, cap) if cap else steps
        stats["steps"] = steps
        info["rounds"].append(stats)
        if not batch:
            print(f"[train] round {k}: no correct samples, nothing to fine-tune on", file=sys.stderr)
            continue
        for group in opt.param_groups:  # a new LambdaLR scales the lr it finds: reset it to the base lr
            group["lr"] = r["lr"]
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s, k=k, n=steps: max(0.0, _lr_factor((k + min(s, n) / n) / rounds, r)))
        trainer = build_trainer(
            base_dir, batch, work, epochs=epochs_per_round, lr=r["lr"], batch_size=r["batch_size"],
            max_length=r["max_length"], max_steps=steps, seed=r["seed"] + k, dtype=r["dtype"],
            grad_accum=r["grad_accum"], max_grad_norm=r["max_grad_norm"], model=model, tokenizer=tok,
            optimizers=(opt, sched), logger=jsonl_logger(log, {"round": k} if rounds > 1 else None, info["steps"]),
            desc=r["method"] + (f" round {k + 1}/{rounds}" if rounds > 1 else ""))
        info["steps"] += trainer.train().global_step
        model = trainer.model
    if not info["steps"]:
        raise UserError(f"{r['method']}: no correct samples in any round, so no training happened "
                        f"({info['rounds']}); try more samples_per_prompt or a stronger base model")
    return model, tok, info


