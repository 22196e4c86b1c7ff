"""`forgetbench train --method rl`: GRPO with TRL's GRPOTrainer, rewarded by the target task's eval scorer.

- Prompts are conversational (the exact chat messages lm-eval sends for each training row), so TRL
  renders them with the tokenizer's chat template, as evaluation does.
- The reward is forgetbench.eval.scorer.reward_function: the item score `forgetbench eval` would give the
  completion (cut at the task's stop strings, the task's filters, its process_results). TRL's
  transformers generation cannot stop on strings, so a completion may run past "</answer>"; the text
  after the stop string earns nothing and costs nothing, exactly as at eval time.
- KL to the initial model: `beta` (0 = no reference model is loaded, TRL's default; the seeds use 0 and
  0.05). Batch sizes count completions: each optimizer step sees batch_size * grad_accum completions,
  i.e. batch_size * grad_accum / num_generations prompts.
- CPU: no vLLM (`use_vllm: true` in a GPU recipe hands generation to TRL's vLLM colocate mode; untested
  here: no GPU, no vllm), no activation checkpointing (small models: recomputation only costs time), fp32
  master weights with bf16 autocast when dtype is bfloat16 (as forgetbench.train.sft).
"""

from __future__ import annotations

from pathlib import Path


def grpo_config(r: dict, work_dir: Path, max_completion_length: int):
    import torch
    from trl import GRPOConfig

    from forgetbench.train.sft import make_config

    return make_config(GRPOConfig, dict(
        output_dir=str(work_dir),
        learning_rate=r["lr"],
        num_train_epochs=r["epochs"],
        max_steps=r["max_steps"] or -1,
        per_device_train_batch_size=r["batch_size"],
        gradient_accumulation_steps=r["grad_accum"],
        num_generations=r["num_generations"],
        max_completion_length=max_completion_length,
        temperature=r["temperature"],
        top_p=1.0,
        top_k=0,
        beta=r["beta"],
        loss_type=r["loss_type"],
        scale_rewards=r["scale_rewards"],
        num_iterations=r["num_iterations"],
        lr_scheduler_type=r["scheduler"],
        warmup_steps=float(r["warmup_ratio"]),
        max_grad_norm=r["max_grad_norm"],
        weight_decay=0.0,
        seed=r["seed"],
        data_seed=r["seed"],
        bf16=r["dtype"] == "bfloat16",
        fp16=r["dtype"] == "float16",
        activation_checkpointing=False,  # small models on CPU: recomputation only costs time
        use_vllm=r["use_vllm"],  # GPU runs: vLLM in colocate mode (TRL's default mode); never on CPU
        use_cpu=not torch.cuda.is_available(),
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        push_to_hub=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        log_completions=False,
    ))


def train_grpo(base_dir: Path, r: dict, scorer, work_dir: Path, log: Path) -> tuple:
    """GRPO on scorer.docs; returns (model, tokenizer, info) like forgetbench.train.sft.run_sft_rounds."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import GRPOTrainer

    from forgetbench.errors import UserError
    from forgetbench.eval.scorer import reward_function
    from forgetbench.train.sft import jsonl_logger

    if r["batch_size"] * r["grad_accum"] % r["num_generations"]:
        raise UserError(f"rl: batch_size * grad_accum ({r['batch_size']} * {r['grad_accum']}) must be a multiple "
                        f"of num_generations ({r['num_generations']}): each prompt's group is scored together")
    set_seed(r["seed"])
    tok = AutoTokenizer.from_pretrained(base_dir)
    if tok.chat_template is None:
        raise UserError(f"{base_dir}: tokenizer has no chat template; training uses the chat format of eval")
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    # The dataset carries an index into scorer.docs, not the doc: docs differ in schema per task and the
    # reward needs them exactly as lm-eval built them.
    rows = [{"prompt": scorer.messages(d), "doc_index": i} for i, d in enumerate(scorer.docs)]
    eos = tok.decode([tok.eos_token_id]) if tok.eos_token_id is not None else None
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward_function(scorer, eos)],
        args=grpo_config(r, work_dir, r["max_completion_length"] or scorer.max_gen_toks),
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        callbacks=[jsonl_logger(log)],
    )
    from forgetbench.runtime.progress import quiet_trainer

    result = quiet_trainer(trainer, "rl (GRPO)").train()
    info = {"steps": result.global_step, "examples": rows, "rounds": []}
    return trainer.model, tok, info
