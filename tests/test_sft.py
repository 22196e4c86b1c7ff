"""forgetbench.train.sft on the tiny random Llama (conftest `tiny_model_dir`: real SmolLM2 tokenizer + template)."""

from __future__ import annotations

import json

import pytest

from forgetbench.errors import UserError
from forgetbench.train.sft import LOG_FILE, RECIPE_FILE, build_trainer, sft

EXAMPLES = [
    {"prompt": f"Using the numbers [{a}, {b}], make {a + b}. Put it in <answer> </answer>.",
     "completion": f"<answer>{a} + {b}</answer>"}
    for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]
] * 2  # 8 examples, each seen twice per epoch: the loss must drop fast


def test_labels_masked_on_prompt_tokens(tiny_model_dir, tmp_path):
    trainer = build_trainer(tiny_model_dir, EXAMPLES[:1], tmp_path / "w")
    tok = trainer.processing_class
    row = trainer.train_dataset[0]
    ids = row["input_ids"]
    # TRL >= 1.x stores labels; older TRL a completion mask its collator turns into the same labels
    labels = row["labels"] if "labels" in row else [t if m else -100 for t, m in zip(ids, row["completion_mask"])]
    # Exactly what evaluation feeds the model: the tokenizer's chat template with generation prompt.
    prompt_ids = tok.apply_chat_template([{"role": "user", "content": EXAMPLES[0]["prompt"]}],
                                         add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    n = len(prompt_ids)
    assert ids[:n] == list(prompt_ids)
    assert labels[:n] == [-100] * n
    assert labels[n:] == ids[n:]  # every completion token is trained, including the end-of-turn token
    assert tok.decode(ids[n:]) == "<answer>1 + 2</answer><|im_end|>\n"
    assert "<|im_start|>system" in tok.decode(ids[:n])  # same system preamble as at evaluation time


def test_sft_trains_and_saves_loadable_checkpoint(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    out = sft(tiny_model_dir, EXAMPLES, tmp_path / "tuned", epochs=4, lr=5e-2, batch_size=4, seed=0)
    assert out == tmp_path / "tuned" and not (tmp_path / "tuned.tmp").exists()

    steps = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, 9))  # 8 examples / 4 per batch * 4 epochs
    assert steps[0]["loss"] > 10  # ~ln(49152): a random model starts near uniform
    assert steps[-1]["loss"] < 0.5 * steps[0]["loss"]

    recipe = json.loads((out / RECIPE_FILE).read_text())
    assert recipe["method"] == "sft" and recipe["n_examples"] == 8 and recipe["steps"] == 8
    assert recipe["hyperparameters"]["lr"] == 5e-2 and recipe["hyperparameters"]["seed"] == 0
    assert recipe["final_loss"] == steps[-1]["loss"]
    assert recipe["versions"]["trl"] and recipe["versions"]["torch"]

    tuned = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert tuned.dtype == torch.bfloat16  # saved in the requested dtype
    diffs = [(p.float() - base.state_dict()[k].float()).abs().max().item() for k, p in tuned.state_dict().items()]
    assert max(diffs) > 1e-3
    assert (out / "tokenizer.json").is_file() and (out / "chat_template.jinja").is_file()
    assert not (out / "trainer").exists()  # Trainer's scratch dir is not part of the checkpoint


def test_sft_is_deterministic_and_replaces_existing_output(tiny_model_dir, tmp_path):
    def losses(d):
        return [json.loads(line)["loss"] for line in (d / LOG_FILE).read_text().splitlines()]

    log = tmp_path / "live.jsonl"
    a = sft(tiny_model_dir, EXAMPLES, tmp_path / "a", epochs=1, lr=5e-2, batch_size=4, log_path=log)
    assert log.read_text() == (a / LOG_FILE).read_text()
    first = losses(a)
    assert len(first) == 2 and first[1] < first[0]
    # Rerunning into an existing dir swaps in the new checkpoint, leaving no .tmp/.old behind, and the
    # same seed gives exactly the same run.
    (a / "stale").write_text("x")
    sft(tiny_model_dir, EXAMPLES, a, epochs=1, lr=5e-2, batch_size=4)
    assert losses(a) == first
    assert not (a / "stale").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a", "live.jsonl"]


def test_bad_examples_and_base_are_user_errors(tiny_model_dir, tmp_path):
    with pytest.raises(UserError, match="prompt"):
        sft(tiny_model_dir, [{"question": "x", "answer": "y"}], tmp_path / "x")
    with pytest.raises(UserError, match="config.json"):
        sft(tmp_path / "nowhere", EXAMPLES, tmp_path / "y")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no half-made output left behind


def test_configs_are_built_only_from_fields_the_installed_classes_have(tmp_path):
    import dataclasses

    from forgetbench.train import sft, rl as train_rl
    from forgetbench.train.methods import METHODS

    @dataclasses.dataclass
    class OldConfig:  # an older TrainingArguments: no activation_checkpointing yet
        output_dir: str = ""
        seed: int = 0

    made = sft.make_config(OldConfig, {"output_dir": "x", "seed": 3, "activation_checkpointing": False})
    assert made == OldConfig("x", 3)  # the optional field is left out: it restates that version's default
    with pytest.raises(UserError, match=r"OldConfig of the installed trl .* has no field\(s\) completion_only_loss"):
        sft.make_config(OldConfig, {"output_dir": "x", "completion_only_loss": True})  # a real one: refused
    # the installed versions: both builders run, and a fractional warmup is a ratio of the steps
    a = sft.sft_config(tmp_path, dtype="float32", warmup_ratio=0.1)
    g = train_rl.grpo_config({**METHODS["rl"].defaults, "dtype": "float32", "warmup_ratio": 0.1}, tmp_path, 16)
    assert a.get_warmup_steps(100) == g.get_warmup_steps(100) == 10
    assert not getattr(a, "activation_checkpointing", False) and not getattr(g, "activation_checkpointing", False)
