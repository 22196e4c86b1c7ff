"""RL's Razor's probes that mirror lm-eval built-ins: truthfulqa_mc1/mc2, winogrande, humaneval(_instruct).

Each task is built as forgetbench builds it (lm-eval's TaskManager over tasks/, rows overridden to a
local jsonl) on the hand-written fixture rows in tests/fixtures/hf, and compared request for request
with lm-eval's own built-in task on the same rows, with and without a chat template; then hand-made
model outputs go through the task's scorer. No model runs. humaneval's scorer runs real programs in
forgetbench's sandbox (Linux namespaces; skipped where the sandbox cannot run).
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from forgetbench.tasks import data, registry
from forgetbench.errors import UserError
from forgetbench.tasks.scoring import humaneval as he
from forgetbench.tasks.scoring import sandbox
from support import FIXTURES, REPO

TASKS_DIR = REPO / "tasks"
BUILTIN = {"truthfulqa_mc1": "truthfulqa_mc1", "truthfulqa_mc2": "truthfulqa_mc2", "winogrande": "winogrande",
           "humaneval": "humaneval", "humaneval_instruct": "humaneval_instruct"}


def rows(name: str) -> list[dict]:
    return list(data.load_docs(registry.get(name), data_dir=FIXTURES).rows)


@pytest.fixture(scope="module")
def tm():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


@pytest.fixture(scope="module")
def tm_builtin():
    """lm-eval's built-ins. Its humaneval utils load HF evaluate's code_eval from the hub at import;
    offline that fails, so a stand-in `evaluate` module lets the task build (nothing here calls it)."""
    from lm_eval.tasks import TaskManager

    real = sys.modules.get("evaluate")
    stub = types.ModuleType("evaluate")
    stub.load = lambda *a, **k: types.SimpleNamespace(compute=lambda **kw: ({"pass@1": 0.0}, {}))
    sys.modules["evaluate"] = stub
    yield TaskManager(include_defaults=True)
    if real is not None:
        sys.modules["evaluate"] = real
    else:
        sys.modules.pop("evaluate", None)


def _build(manager, name: str, rows_: list[dict], tmp_path: Path):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows_), encoding="utf-8")
    overrides = {"dataset_path": "json", "dataset_name": None, "dataset_kwargs": {"data_files": {"test": str(path)}},
                 "test_split": "test", "custom_dataset": None, "training_split": None, "validation_split": None,
                 "fewshot_split": None}
    return manager._factory.build(manager.task_index[name], overrides=overrides, registry=manager.task_index)


def _chat(messages, add_generation_prompt=True):
    text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
    return text + ("<assistant>" if add_generation_prompt else "")


def _requests(task, chat: bool = False):
    task.build_all_requests(limit=None, rank=0, world_size=1, apply_chat_template=chat,
                            chat_template=_chat if chat else None)
    return task.instances


def test_registry_entries():
    tasks = registry.all_tasks()
    assert {n: (tasks[n].role, tasks[n].primary_metric) for n in BUILTIN} == {
        "truthfulqa_mc1": ("probe", "acc,none"), "truthfulqa_mc2": ("probe", "acc,none"),
        "winogrande": ("probe", "acc,none"), "humaneval": ("probe", "pass@1,create_test"),
        "humaneval_instruct": ("probe", "pass@1,create_test")}
    assert [t.name for t in registry.suite("razor")] and {t.name for t in registry.suite("razor")} == {
        "hellaswag", "truthfulqa_mc2", "mmlu", "ifeval", "winogrande", "humaneval_instruct"}
    assert tasks["humaneval"].unsafe_code and tasks["humaneval_instruct"].unsafe_code
    assert not any(tasks[n].unsafe_code for n in ("truthfulqa_mc2", "winogrande", "mmlu"))
    assert tasks["winogrande"].sources[0].describe() == "allenai/winogrande/winogrande_xl:validation"
    assert tasks["truthfulqa_mc1"].sources[0].describe() == "truthfulqa/truthful_qa/multiple_choice:validation"
    assert tasks["humaneval"].sources[0].describe() == "openai/openai_humaneval:test"
    for n in BUILTIN:  # no real rows here to pin: each says why in its YAML
        assert not tasks[n].data_hashes
        assert registry.read_yaml(Path(tasks[n].yaml_path))["metadata"]["forgetbench"]["unpinned"]


@pytest.mark.parametrize("chat", [False, True])
@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_requests_equal_lm_eval_builtin(tm, tm_builtin, tmp_path, name, chat):
    ours = _requests(_build(tm, name, rows(name), tmp_path), chat=chat)
    theirs = _requests(_build(tm_builtin, BUILTIN[name], rows(name), tmp_path), chat=chat)
    assert len(ours) == len(theirs) > 0
    assert [i.arguments for i in ours] == [i.arguments for i in theirs]
    assert [i.doc for i in ours] == [i.doc for i in theirs]


def test_truthfulqa_mc1_prompt_and_acc(tm, tmp_path):
    task = _build(tm, "truthfulqa_mc1", rows("truthfulqa_mc1"), tmp_path)
    inst = _requests(task)
    ctx, cont = inst[0].arguments
    assert ctx.startswith("Q: What is human life expectancy in the United States?\nA: Human life expectancy")
    assert ctx.endswith("\n\nQ: What happens if you swallow chewing gum?\nA:")
    assert cont == " It passes through your digestive system."
    doc = list(task.eval_docs)[0]
    assert task.process_results(doc, [(-1.0, True), (-2.0, False), (-3.0, False), (-4.0, False)])["acc"] == 1.0
    assert task.process_results(doc, [(-2.0, False), (-1.0, True), (-3.0, False), (-4.0, False)])["acc"] == 0.0


def test_truthfulqa_mc2_is_probability_mass_on_true_answers(tm, tmp_path):
    import math

    task = _build(tm, "truthfulqa_mc2", rows("truthfulqa_mc2"), tmp_path)
    doc = list(task.eval_docs)[0]  # 5 choices, the first two true
    lls = [math.log(p) for p in (0.4, 0.2, 0.2, 0.1, 0.1)]
    assert task.process_results(doc, [(x, False) for x in lls])["acc"] == pytest.approx(0.6)
    uniform = task.process_results(doc, [(-1.0, False)] * 5)["acc"]
    assert uniform == pytest.approx(0.4)


def test_winogrande_partial_scoring(tm, tmp_path):
    task = _build(tm, "winogrande", rows("winogrande"), tmp_path)
    inst = _requests(task)
    # two contexts (the sentence up to the blank, each option filled in), one shared continuation
    assert [i.arguments for i in inst[:2]] == [
        ("The trophy doesn't fit into the brown suitcase because the trophy", " is too large."),
        ("The trophy doesn't fit into the brown suitcase because the suitcase", " is too large."),
    ]
    docs = list(task.eval_docs)
    assert task.process_results(docs[0], [(-1.0, True), (-2.0, False)])["acc"] == 1.0  # answer "1"
    assert task.process_results(docs[1], [(-1.0, True), (-2.0, False)])["acc"] == 0.0  # answer "2"


def test_humaneval_prompts_and_stops(tm, tmp_path):
    ctx, gen = _requests(_build(tm, "humaneval", rows("humaneval"), tmp_path))[0].arguments
    assert ctx == rows("humaneval")[0]["prompt"]
    assert gen["until"] == ["\nclass", "\ndef", "\n#", "\nif", "\nprint"] and gen["max_gen_toks"] == 1024
    assert gen["do_sample"] is False
    ctx, _ = _requests(_build(tm, "humaneval_instruct", rows("humaneval"), tmp_path), chat=True)[0].arguments
    assert ctx.startswith("<user>Write a solution to the following problem and make sure that it passes the tests:")
    # the assistant turn is pre-filled (a real tokenizer renders it with continue_final_message)
    assert ctx.endswith("</user><assistant>Here is the completed function:\n```python\n" + rows("humaneval")[0]["prompt"]
                        + "\n</assistant>")


def test_humaneval_filters_match_lm_eval():
    doc = rows("humaneval")[0]
    body = "    return a + b\n```\nThat adds them."
    assert he.build_predictions([[body]], [doc]) == [[doc["prompt"] + body]]
    assert he.build_predictions_instruct([[body]], [doc]) == [[doc["prompt"] + "    return a + b\n"]]
    assert he.test_program(doc, "X") == "X\n" + doc["test"] + "\ncheck(add)"


def _sandbox_or_skip():
    try:
        sandbox.isolation()
    except UserError as e:
        pytest.skip(f"no sandbox here: {e}")


def test_humaneval_scorer_needs_the_opt_in(monkeypatch):
    monkeypatch.delenv(sandbox.CONFIRM_ENV, raising=False)
    doc = rows("humaneval")[0]
    with pytest.raises(UserError, match="--confirm-run-unsafe-code"):
        he.process_results(doc, [[doc["prompt"] + doc["canonical_solution"]]])


@pytest.mark.parametrize("name", ["humaneval", "humaneval_instruct"])
def test_humaneval_canonical_passes_blank_fails(tm, tmp_path, name):
    """The fixture problems through the task's own filter and scorer: canonical solutions pass,
    a blank completion, a wrong one and a hostile one fail."""
    _sandbox_or_skip()
    task = _build(tm, name, rows("humaneval"), tmp_path)
    inst = _requests(task)
    docs = list(task.eval_docs)

    def score(completions):
        for i, c in zip(inst, completions):
            i.resps = [c]
        task.apply_filters()
        with sandbox.opened(True):
            return [task.process_results(docs[i.doc_id], [i.filtered_resps["create_test"]])["pass@1"] for i in inst]

    assert score([d["canonical_solution"] for d in docs]) == [1, 1, 1]
    assert score(["" for _ in docs]) == [0, 0, 0]
    assert score(["    return 0\n", "    return True\n", "    import os\n    os.system('rm -rf /')\n"]) == [0, 0, 0]
