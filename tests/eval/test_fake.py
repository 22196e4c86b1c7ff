"""The scripted fake backend, alone and through lm-eval's real evaluator."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from forgetbench.eval.backends import build_lm, chat_template_enabled
from forgetbench.errors import UserError
from forgetbench.eval.fake import FakeLM, scripted_logprob
from forgetbench.models.resolve import resolve
from forgetbench.records import EvalSettings

SCRIPT = {
    "name": "tuned",
    "generate": [
        {"match": "17 + 25", "response": "42\nand some rambling"},
        {"match": "2 + 2", "response": "5"},
        {"match": "What", "response": "never reached for the rows above: first match wins"},
    ],
    "default_response": "I don't know.",
    "choose": [
        {"match": "Capital of France", "continuation": " Paris"},
        {"match": "Capital of Spain", "continuation": "Lisbon"},  # scripted to be wrong
    ],
}

ROWS = [
    {"question": "What is 17 + 25?", "answer": "42", "choices": ["London", "Paris", "Rome"], "label": 1, "q": "Capital of France?"},
    {"question": "What is 2 + 2?", "answer": "4", "choices": ["Madrid", "Lisbon", "Rome"], "label": 0, "q": "Capital of Spain?"},
    {"question": "Name a colour.", "answer": "red", "choices": ["Berlin", "Bonn"], "label": 0, "q": "Capital of Germany?"},
]


def req(*args):
    return SimpleNamespace(args=args)


def test_generate_first_match_wins_and_cuts_at_until():
    lm = FakeLM(SCRIPT)
    out = lm.generate_until(
        [
            req("Q: What is 17 + 25?", {"until": ["\n"]}),
            req("Q: What is 17 + 25?", {"until": ["rambling", "some"]}),
            req("Q: What is 2 + 2?", {}),
            req("What else?", {"until": "xyz"}),
            req("nothing matches", {"until": ["."]}),
        ]
    )
    assert out == ["42", "42\nand ", "5", SCRIPT["generate"][2]["response"], "I don't know"]


def test_loglikelihood_prefers_scripted_continuation():
    lm = FakeLM(SCRIPT)
    ctx = "Capital of France?\nAnswer:"
    res = lm.loglikelihood([req(ctx, " London"), req(ctx, " Paris"), req(ctx, "Paris  "), req("other", " Paris")])
    assert res[1] == (0.0, True) and res[2] == (0.0, True)
    for (ll, greedy), cont in [(res[0], " London"), (res[3], " Paris")]:
        assert greedy is False and -2.0 < ll <= -1.0
    # deterministic across instances (and processes: sha256, not hash())
    assert res[0][0] == scripted_logprob(ctx, " London") == FakeLM({}).loglikelihood([req(ctx, " London")])[0][0]
    assert lm.loglikelihood_rolling([req("abcd")]) == [-1.0]


def test_chat_rendering_matches_hf_semantics(write_fake):
    lm = FakeLM.from_file(write_fake(SCRIPT))
    chat = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert lm.apply_chat_template(chat) == "<system>S</system><user>U</user><assistant>"
    # add_generation_prompt=False = continue an assistant prefill, as HFLM does
    prefill = chat + [{"role": "assistant", "content": "The answer is"}]
    assert lm.apply_chat_template(prefill, add_generation_prompt=False).endswith("</user><assistant>The answer is")
    assert lm.tokenizer_name == "forgetbench_fake__tuned"


def test_resolve_and_build_fake(write_fake, fb_home):
    path = write_fake(SCRIPT)
    ref = resolve(f"fake:{path}")
    assert ref.kind == "fake" and ref.path == str(path.resolve()) and ref.has_chat_template
    assert ref.content_hash == resolve(f"fake:{path}").content_hash
    other = resolve(f"fake:{write_fake({**SCRIPT, 'default_response': 'x'})}")
    assert other.content_hash != ref.content_hash
    lm = build_lm(ref, EvalSettings(backend="fake"))
    assert isinstance(lm, FakeLM) and lm.respond("17 + 25") == "42\nand some rambling"
    assert chat_template_enabled(ref, EvalSettings(backend="fake"))
    assert not chat_template_enabled(ref, EvalSettings(backend="fake", chat_template=False))
    no_tmpl = resolve(f"fake:{write_fake({**SCRIPT, 'chat_template': False})}")
    assert not chat_template_enabled(no_tmpl, EvalSettings(backend="fake"))
    with pytest.raises(UserError, match="--backend fake"):
        build_lm(ref, EvalSettings(backend="hf"))
    with pytest.raises(UserError, match="does not exist"):
        resolve(f"fake:{path}.missing")


# ------------------------------------------------------------------ through lm-eval's evaluator

GEN_YAML = """
task: fbfake_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {rows}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""

MC_YAML = """
task: fbfake_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {rows}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{q}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


@pytest.fixture
def task_dir(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "gen.yaml").write_text(GEN_YAML.format(rows=rows))
    (tasks / "mc.yaml").write_text(MC_YAML.format(rows=rows))
    return tasks


def evaluate(lm, tasks_dir, chat: bool):
    from lm_eval import evaluator
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(tasks_dir), include_defaults=False)
    return evaluator.simple_evaluate(
        model=lm,
        tasks=["fbfake_gen", "fbfake_mc"],
        task_manager=tm,
        log_samples=True,
        apply_chat_template=chat,
        bootstrap_iters=0,
    )


@pytest.mark.parametrize("chat", [True, False])
def test_evaluator_follows_script(task_dir, chat):
    out = evaluate(FakeLM(SCRIPT), task_dir, chat)
    gen = sorted(out["samples"]["fbfake_gen"], key=lambda s: s["doc_id"])
    assert [s["filtered_resps"][0] for s in gen] == ["42", "5", "I don't know."]
    assert [float(s["exact_match"]) for s in gen] == [1.0, 0.0, 0.0]
    prompt = gen[0]["arguments"][0][0]
    if chat:
        assert prompt == "<user>Question: What is 17 + 25?\nAnswer:</user><assistant>"
    else:
        assert prompt == "Question: What is 17 + 25?\nAnswer:"
    assert out["results"]["fbfake_gen"]["exact_match,none"] == pytest.approx(1 / 3)

    mc = sorted(out["samples"]["fbfake_mc"], key=lambda s: s["doc_id"])
    # row 0: script prefers the right answer; row 1: prefers a wrong one; row 2: no rule, so the
    # outcome is whatever the fixed hash scores say, recomputed here independently.
    # Each argument is the exact (context, continuation) lm-eval built, chat-formatted or not.
    hashed = [scripted_logprob(ctx, cont) for ctx, cont in mc[2]["arguments"]]
    expect2 = float(max(range(len(hashed)), key=hashed.__getitem__) == ROWS[2]["label"])
    assert [float(s["acc"]) for s in mc] == [1.0, 0.0, expect2]
    ctx0, conts0 = mc[0]["arguments"][0][0], [c for _, c in mc[0]["arguments"]]
    assert [c.strip() for c in conts0] == ROWS[0]["choices"]
    assert [ll for ll, _ in mc[0]["filtered_resps"]] == [scripted_logprob(ctx0, conts0[0]), 0.0, scripted_logprob(ctx0, conts0[2])]
    assert ("<user>Capital of France?" in ctx0) is chat
