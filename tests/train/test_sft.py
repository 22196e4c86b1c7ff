"""forgetbench.train.sft on the tiny random Llama (conftest `tiny_model_dir`: real SmolLM2 tokenizer + template)."""

from __future__ import annotations


import pytest

from forgetbench.errors import UserError
from forgetbench.train.sft import build_trainer

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
