"""forgetbench train: recipes, held-out training rows, rewards == eval scores, and each method end to end
on the conftest tiny random Llama (real SmolLM2 tokenizer and chat template), 1-2 steps each."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import yaml

from forgetbench.eval import lmeval
from forgetbench.tasks import registry
from forgetbench.train import run as train
from forgetbench.train.methods import METHODS, SFT_KEYS
from forgetbench.tasks.data import canonical, load_docs
from forgetbench.errors import UserError
from forgetbench.tasks.lite import countdown, instructions
from forgetbench.records import Docs, EvalSettings, ModelRef
from forgetbench.eval.scorer import load_scorer, reward_function
from forgetbench.tasks.scoring import countdown as cd
from forgetbench.train import data as train_data, recipe as recipes
from support import REPO

RECIPES = REPO / "recipes"
TINY = ["--set", "n_train=4", "--set", "batch_size=4", "--set", "max_length=256"]


def run_cli(*argv: str) -> int:
    p = argparse.ArgumentParser()
    train.add_arguments(p)
    return train.main(p.parse_args(list(argv)))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------------------------- recipes


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_shipped_recipes_are_valid(path):
    r = recipes.load_recipe(path, None)
    assert r["method"] == path.stem and r["task"] and r["base"]
    assert registry.get(r["task"]).role == "target"
    raw = yaml.safe_load(path.read_text())
    assert set(raw) - {"method", "task", "base"} == set(METHODS[r["method"]].defaults)  # every setting spelled out


def test_recipe_precedence_and_validation(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("method: sft\nlr: 1e-5\nepochs: 3\n")  # YAML reads 1e-5 as a string: still a float
    r = recipes.load_recipe(f, None, ["epochs=2", "max_steps=7"])
    assert (r["lr"], r["epochs"], r["max_steps"], r["batch_size"]) == (1e-5, 2, 7, SFT_KEYS["batch_size"])
    with pytest.raises(UserError, match="beta"):
        recipes.load_recipe(f, None, ["beta=0.1"])  # an RL setting in an SFT recipe
    with pytest.raises(UserError, match="epochs"):
        recipes.load_recipe(f, None, ["epochs=two"])
    with pytest.raises(UserError, match="method"):
        recipes.load_recipe(f, "rl")
    with pytest.raises(UserError, match="method"):
        recipes.load_recipe(None, None)
    assert recipes.load_recipe(None, "rl")["beta"] == 0.0


# --------------------------------------------------------------------------------- data rules


def test_training_rows_are_disjoint_from_eval_rows():
    spec = registry.get("lite_countdown")
    eval_rows = {canonical(r) for r in load_docs(spec).rows}
    recipe = recipes.load_recipe(None, "rl", ["n_train=40"])
    rows, scorer, info = train_data.training_rows(spec, recipe, None, None)
    assert len(rows) == len(scorer.docs) == 40 and not eval_rows & {canonical(r) for r in rows}
    # Asking for the eval seed itself: the generator's first 64 rows are the eval rows, all dropped.
    recipe = recipes.load_recipe(None, "rl", ["n_train=40", "data_seed=0"])
    rows, _, info = train_data.training_rows(spec, recipe, None, None)
    assert info["n_dropped_eval_overlap"] == 64 and len(rows) == 40
    assert not eval_rows & {canonical(r) for r in rows}


@pytest.mark.parametrize("task", ["lite_countdown", "lite_ifeval"])
def test_expert_examples_get_full_marks_from_the_eval_scorer(task):
    spec = registry.get(task)
    rows, scorer, info = train_data.training_rows(spec, recipes.load_recipe(None, "sft", ["n_train=6"]), None, None)
    examples = train_data.expert_examples(spec, rows, scorer)
    assert len(examples) == 6 and info["n_rows"] == 6
    for ex, doc in zip(examples, scorer.docs):
        assert ex["prompt"] == scorer.messages(doc) and scorer.score(doc, ex["completion"]) == 1.0


def test_data_file_rows_matching_an_eval_prompt_are_dropped(tmp_path):
    """lite_ifeval rows carry a `key`: a copy of an eval row under another key is still an eval prompt."""
    spec = registry.get("lite_ifeval")
    ev = load_docs(spec).rows
    fresh = instructions.generate(3, seed=777)
    f = tmp_path / "rows.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in [{**ev[0], "key": 999}, *fresh, ev[1]]))
    rows, scorer, info = train_data.training_rows(spec, recipes.load_recipe(None, "rl"), f, None)
    assert rows == fresh and info["n_dropped_eval_overlap"] == 2
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": ev[2]["prompt"], "response": "x"}) + "\n"
                     + json.dumps({"prompt": "something else", "response": "y"}) + "\n")
    examples, dropped = train_data.pair_examples(pairs, train_data.held_out(spec, None)[1])
    assert examples == [{"prompt": "something else", "completion": "y"}] and dropped == 1


def test_tasks_without_training_data_or_expert_are_user_errors(tiny_model_dir, tmp_path):
    with pytest.raises(UserError, match="--data"):
        run_cli("--method", "rl", "--base", str(tiny_model_dir), "--task", "ifeval", "--out", str(tmp_path / "a"))
    with pytest.raises(UserError, match="expert"):
        run_cli("--method", "sft", "--base", str(tiny_model_dir), "--task", "lite_arith", "--out", str(tmp_path / "b"))
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------- reward == eval score


def _cd_rows():
    return countdown.generate(3, seed=5)


HAND_WRITTEN = [  # (completion builder, what eval says)
    (lambda r: countdown.expert_response(r) + " and then I ramble <answer>1 + 1</answer>", 1.0),  # cut at 1st stop
    (lambda r: "<think>hmm</think>\n<answer>" + " + ".join(map(str, r["nums"])) + " + 1</answer>", 0.0),  # bad numbers
    (lambda r: "<answer>" + " - ".join(map(str, r["nums"])) + "</answer>", None),  # usually wrong value
    (lambda r: "<answer>twelve plus three", 0.0),  # unparseable
    (lambda r: "I do not know.", 0.0),  # no answer
]


def test_reward_equals_eval_item_score(tmp_path):
    """The GRPO reward of a completion == the item score lm-eval's evaluator gives the same text
    (FakeLM answers the scripted completion; lmeval.score_task scores it as `forgetbench eval` does)."""
    from forgetbench.eval.fake import FakeLM

    spec, rows = registry.get("lite_countdown"), _cd_rows()
    scorer = load_scorer(spec, rows)
    reward = reward_function(scorer, eos="<|im_end|>")
    for build, expected in HAND_WRITTEN:
        texts = [build(r) for r in rows]
        lm = FakeLM({"generate": [{"match": cd.prompt(r["nums"], r["target"]), "response": t}
                                  for r, t in zip(rows, texts)]})
        docs = Docs(task=spec.name, rows=tuple(rows), data_hash="h" * 64, sources=("test",))
        ref = ModelRef(spec="fake:t", kind="fake", path=str(tmp_path), content_hash="0" * 64)
        run = lmeval.score_task(lm, ref, spec, docs, EvalSettings(backend="fake"), chat_template=True)
        got = reward([[{"role": "assistant", "content": t}] for t in texts], doc_index=[0, 1, 2])
        assert got == [item.score for item in run.items]
        assert got == [cd.score(t.split("</answer>")[0], r["nums"], r["target"]) for r, t in zip(rows, texts)]
        if expected is not None:
            assert got == [expected] * 3
    # The end-of-turn string also ends a response, as lm-eval's HF model cuts there.
    r0 = rows[0]
    assert reward(["<answer>1<|im_end|>" + countdown.expert_response(r0)], doc_index=[0]) == [0.0]


def test_reward_uses_the_tasks_filters_and_process_results():
    arith = load_scorer(registry.get("lite_arith"), [{"question": "What is 50 + 5?", "answer": "50 + 5 = 55\n#### 55"}])
    score = lambda text: arith.score(arith.docs[0], text)  # noqa: E731
    assert score("First 50 + 5 = 55. So the answer is 55.") == 1.0  # flexible-extract: last number
    assert score("The answer is 55.\nQuestion: what is 2 + 2? Answer: 4") == 1.0  # cut at the stop string
    assert score("50 + 5 = 56") == 0.0
    ifeval_rows = instructions.generate(4, seed=3)
    ife = load_scorer(registry.get("lite_ifeval"), ifeval_rows)
    assert [ife.score(d, instructions.expert_response(r)) for d, r in zip(ife.docs, ifeval_rows)] == [1.0] * 4
    assert ife.score(ife.docs[0], "NO, THIS IS, ALL WRONG") == 0.0


def test_prompts_render_like_lm_eval_hf_prompts(tiny_model_dir):
    """Training prompts (TaskScorer.messages through the tokenizer's chat template) are byte-identical
    to the context lm-eval's HF model gets for the same doc."""
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=1)
    for name, rows in [("lite_countdown", _cd_rows()), ("lite_ifeval", instructions.generate(2, seed=1))]:
        scorer = load_scorer(registry.get(name), rows)
        for doc in scorer.docs:
            ctx = scorer.task.fewshot_context(doc, 0, apply_chat_template=True, fewshot_as_multiturn=True,
                                              chat_template=lm.apply_chat_template)
            ours = lm.tokenizer.apply_chat_template(scorer.messages(doc), tokenize=False, add_generation_prompt=True)
            assert ctx == ours and "<|im_start|>assistant\n" in ours


# ------------------------------------------------------------------------------- end to end


def _check_run(out: Path, method: str, base: Path) -> dict:
    from forgetbench.models.resolve import content_hash

    for f in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "recipe.yaml",
              "forgetbench_train.json", "forgetbench_train_log.jsonl", "forgetbench_train_data.jsonl"):
        assert (out / f).is_file(), f
    assert not (out / "trainer").exists() and not out.with_name(out.name + ".tmp").exists()
    rec = json.loads((out / "forgetbench_train.json").read_text())
    assert rec["method"] == method and rec["task"] == "lite_countdown"
    assert rec["base"]["content_hash"] == content_hash(base)
    assert rec["versions"]["trl"] and rec["versions"]["lm_eval"] and rec["wall_seconds"] > 0
    assert rec["recipe"]["dtype"] in ("bfloat16", "float32")  # "auto" resolved before training, recorded
    assert rec["machine"]["cpu"].startswith("CPU: ") and rec["machine"]["threads"] >= 1
    assert recipes.load_recipe(out / "recipe.yaml", None) == rec["recipe"]  # the copy reruns the same job
    steps = [s for s in read_jsonl(out / "forgetbench_train_log.jsonl") if "loss" in s]
    assert len(steps) == rec["steps"] >= 1 and rec["final_metrics"]["final_loss"] == steps[-1]["loss"]
    return rec


def test_sft_end_to_end_with_recipe_file(tiny_model_dir, tmp_path):
    out = tmp_path / "sft"
    assert run_cli("--recipe", str(RECIPES / "cpu" / "sft.yaml"), "--base", str(tiny_model_dir), "--out", str(out),
                   *TINY, "--set", "max_steps=1") == 0
    rec = _check_run(out, "sft", tiny_model_dir)
    assert rec["steps"] == 1 and rec["n_examples"] == 4 and rec["data"]["n_rows"] == 4
    assert (out / "recipe.source.yaml").read_text() == (RECIPES / "cpu" / "sft.yaml").read_text()
    data = read_jsonl(out / "forgetbench_train_data.jsonl")
    for ex in data:  # solver answers, and the scorer agrees they are right
        nums, target = re.search(r"numbers \[(.*?)\].*equals (\d+)\.", ex["prompt"][0]["content"]).groups()
        assert cd.score(ex["completion"], [int(n) for n in nums.split(", ")], int(target)) == 1.0
    with pytest.raises(UserError, match="exists"):  # never clobbered without --force
        run_cli("--recipe", str(RECIPES / "cpu" / "sft.yaml"), "--base", str(tiny_model_dir), "--out", str(out))


def test_sft_rerun_is_deterministic_and_replaces_the_folder(tiny_model_dir, tmp_path):
    # the same recipe and seed give the same run; --force swaps in a complete new folder (nothing stale left)
    out, again = tmp_path / "a", tmp_path / "b"
    args = ("--recipe", str(RECIPES / "cpu" / "sft.yaml"), "--base", str(tiny_model_dir), *TINY, "--set", "max_steps=2",
            "--set", "epochs=2")
    assert run_cli(*args, "--out", str(out)) == 0 and run_cli(*args, "--out", str(again)) == 0
    losses = lambda d: [r["loss"] for r in read_jsonl(d / "forgetbench_train_log.jsonl") if "loss" in r]  # noqa: E731
    first = losses(out)
    assert len(first) == 2 and first == losses(again)
    (out / "stale.txt").write_text("x")
    assert run_cli(*args, "--out", str(out), "--force") == 0
    assert losses(out) == first and not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no .tmp / .old folder left behind


def _answer_for(messages) -> tuple[dict, str]:
    nums, target = re.search(r"numbers \[(.*?)\].*equals (\d+)\.", messages[-1]["content"]).groups()
    row = {"nums": [int(n) for n in nums.split(", ")], "target": int(target)}
    return row, countdown.expert_response(row)


def test_self_sft_keeps_only_correct_samples(tiny_model_dir, tmp_path, monkeypatch):
    from forgetbench.train import sft

    calls = []

    def fake_sampler(model, tok, prompts, *, n, **kw):
        calls.append(len(prompts))
        out = []
        for m in prompts:
            row, good = _answer_for(m)
            out.append([good + "\nextra text after the answer",  # correct: kept, cut after </answer>
                        "<answer>" + " + ".join(map(str, row["nums"])) + " + 1</answer>",  # bad numbers
                        "<answer>no idea",  # unparseable
                        "I will not answer."][:n])
        return out

    monkeypatch.setattr(sft, "sample_responses", fake_sampler)
    out = tmp_path / "self"
    assert run_cli("--method", "self-sft", "--base", str(tiny_model_dir), "--task", "lite_countdown",
                   "--out", str(out), *TINY, "--set", "samples_per_prompt=4", "--set", "max_steps=1") == 0
    rec = _check_run(out, "self-sft", tiny_model_dir)
    assert calls == [4]  # sampled once, all 4 prompts
    assert rec["data"]["rounds"] == [{"round": 0, "sampled": 16, "kept": 4, "prompts": 4, "prompts_solved": 4,
                                      "mean_score": 0.25, "steps": 1}]
    kept = read_jsonl(out / "forgetbench_train_data.jsonl")
    assert [ex["completion"] for ex in kept] == [_answer_for(ex["prompt"])[1] for ex in kept]
    assert all(ex["completion"].endswith("</answer>") for ex in kept) and len(kept) == 4
    assert "kept 4/16" in rec["training_data"]


def test_onpolicy_resamples_each_epoch_from_the_current_model(tiny_model_dir, tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    from forgetbench.train import sft

    seen = []

    def fake_sampler(model, tok, prompts, *, n, seed, **kw):
        seen.append((seed, {k: v.detach().clone() for k, v in model.state_dict().items()}))
        return [[_answer_for(m)[1]] * n for m in prompts]

    monkeypatch.setattr(sft, "sample_responses", fake_sampler)
    out = tmp_path / "onpolicy"
    assert run_cli("--method", "onpolicy-sft", "--base", str(tiny_model_dir), "--task", "lite_countdown",
                   "--out", str(out), *TINY, "--set", "samples_per_prompt=2", "--set", "epochs=2",
                   "--set", "lr=0.05", "--set", "batch_size=8") == 0
    rec = _check_run(out, "onpolicy-sft", tiny_model_dir)
    assert [s for s, _ in seen] == [0, 1] and rec["steps"] == 2  # one sampling per epoch, one step each
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).state_dict()
    first, second = seen[0][1], seen[1][1]
    assert all(torch.equal(first[k], base[k]) for k in base)  # epoch 0 samples the initial model
    assert max((second[k] - first[k]).abs().max().item() for k in base) > 1e-3  # epoch 1: the trained one
    log = read_jsonl(out / "forgetbench_train_log.jsonl")
    assert [e["step"] for e in log if e.get("event") == "sample"] == [0, 1]
    assert [(e["step"], e["round"]) for e in log if "loss" in e] == [(1, 0), (2, 1)]
    assert [r["kept"] for r in rec["data"]["rounds"]] == [8, 8]


@pytest.mark.parametrize("beta", [0.0, 0.05])
def test_rl_end_to_end(tiny_model_dir, tmp_path, beta):
    out = tmp_path / "rl"
    assert run_cli("--method", "rl", "--base", str(tiny_model_dir), "--task", "lite_countdown", "--out", str(out),
                   "--set", "n_train=2", "--set", "batch_size=2", "--set", "num_generations=2",
                   "--set", "max_completion_length=8", "--set", "max_steps=1", "--set", f"beta={beta}") == 0
    rec = _check_run(out, "rl", tiny_model_dir)
    (step,) = [s for s in read_jsonl(out / "forgetbench_train_log.jsonl") if "loss" in s]
    assert step["rewards/lite_countdown_score/mean"] == step["reward"] == 0.0  # a random model is never right
    assert ("kl" in step) == (beta > 0) and rec["hyperparameters"]["beta"] == beta
    assert [ex["doc_index"] for ex in read_jsonl(out / "forgetbench_train_data.jsonl")] == [0, 1]


def test_sampler_batches_and_restores_the_model(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forgetbench.train.sft import sample_responses

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).train()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = [[{"role": "user", "content": f"Say {i}."}] for i in range(3)]
    kw = dict(n=2, max_new_tokens=4, temperature=1.0, batch_size=4, dtype="bfloat16")
    a = sample_responses(model, tok, prompts, seed=1, **kw)
    assert [len(r) for r in a] == [2, 2, 2] and all(isinstance(t, str) and t for r in a for t in r)
    assert a == sample_responses(model, tok, prompts, seed=1, **kw)  # seeded
    assert model.training and tok.padding_side == "right"


def test_grpo_without_reward_variance_is_reported(capsys):
    """No group with different rewards in any step: zero advantages, no update (the fp32 demo case)."""
    flat = [{"step": i, "loss": 0.0, "reward": 0.0, "frac_reward_zero_std": 1.0} for i in (1, 2)]
    (msg,) = train._no_signal("rl", flat)
    assert "equal rewards in all 2 steps" in msg and "warning" in capsys.readouterr().err
    assert train._no_signal("rl", [*flat, {"step": 3, "loss": 0.1, "frac_reward_zero_std": 0.5}]) == []
    assert train._no_signal("sft", flat) == [] and train._no_signal("rl", []) == []
