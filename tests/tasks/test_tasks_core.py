"""The five real-data core tasks (ifeval, mmlu, hellaswag, gsm8k, math500), offline.

Each task is built exactly as forgetbench builds it (lm-eval TaskManager over tasks/, data overridden
to a local jsonl in the hub schema), on hand-written rows. We check the rendered prompts, that they
equal lm-eval's built-in tasks' prompts on the same rows, and score hand-written responses through
the task's own filters and process_results. No model runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from forgetbench.tasks import registry
from support import REPO

TASKS_DIR = REPO / "tasks"

MMLU_ROWS = [
    {
        "question": "  What is 2 + 2?  ",
        "subject": "high_school_mathematics",
        "choices": ["3", "4", "5", "22"],
        "answer": 1,
    },
    {
        "question": "Which organ pumps blood?",
        "subject": "anatomy",
        "choices": ["Lung", "Liver", "Heart", "Skin"],
        "answer": 2,
    },
]
HELLASWAG_ROWS = [
    {
        "ind": 7,
        "activity_label": "Making a sandwich",
        "ctx_a": "A man puts bread on a plate. [title] He",
        "ctx_b": "spreads",
        "ctx": "A man puts bread on a plate. He spreads",
        "endings": ["butter on it.", "the [step] plate away.", "a car.", "to the moon."],
        "source_id": "x",
        "split": "val",
        "split_type": "indomain",
        "label": "0",
    }
]
GSM8K_ROWS = [
    {
        "question": "Janet has 3 boxes of 6 eggs. How many eggs does she have?",
        "answer": "She has 3 * 6 = <<3*6=18>>18 eggs.\n#### 18",
    },
    {"question": "What is 1,000 + 234?", "answer": "1000 + 234 = 1234\n#### 1,234"},
]
MATH500_ROWS = [
    {
        "problem": "What is $\\frac{2}{4}$ in lowest terms?",
        "solution": "Divide by 2: $\\boxed{\\frac12}$.",
        "answer": "\\frac12",
        "subject": "Prealgebra",
        "level": 1,
        "unique_id": "test/prealgebra/1.json",
    }
]
IFEVAL_ROWS = [
    {
        "key": 1,
        "prompt": "Describe a cat in fewer than 3 sentences, all in lowercase letters.",
        "instruction_id_list": ["change_case:english_lowercase", "length_constraints:number_sentences"],
        "kwargs": [{}, {"relation": "less than", "num_sentences": 3}],
    }
]


@pytest.fixture(scope="module", autouse=True)
def _isolated_home(tmp_path_factory):
    """ifeval's utils.py writes nltk data under forgetbench's home: keep it out of ~/.cache."""
    old = os.environ.get("FORGETBENCH_HOME")
    os.environ["FORGETBENCH_HOME"] = str(tmp_path_factory.mktemp("fbhome"))
    yield
    if old is None:
        os.environ.pop("FORGETBENCH_HOME", None)
    else:
        os.environ["FORGETBENCH_HOME"] = old


@pytest.fixture(scope="module")
def tm():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


@pytest.fixture(scope="module")
def tm_builtin():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=True)


def _overrides(path: Path) -> dict:
    return {
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(path)}},
        "test_split": "test",
        "custom_dataset": None,
        "training_split": None,
        "validation_split": None,
        "fewshot_split": None,
    }


def _build(manager, name: str, rows: list[dict], tmp_path: Path, **extra):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    overrides = {**_overrides(path), **extra}
    return manager._factory.build(manager.task_index[name], overrides=overrides, registry=manager.task_index)


def _fake_chat_template(messages, add_generation_prompt=True):
    """Renders messages visibly, so a test can see which role each part landed in."""
    text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
    return text + ("<assistant>" if add_generation_prompt else "")


def _requests(task, chat: bool = False):
    task.build_all_requests(
        limit=None,
        rank=0,
        world_size=1,
        apply_chat_template=chat,
        chat_template=_fake_chat_template if chat else None,
    )
    return task.instances


def _score_generations(task, responses: list[str]) -> dict[str, list[dict]]:
    """Put hand-written responses through the task's filters and process_results, per filter."""
    instances = _requests(task)
    assert len(instances) == len(responses)
    for inst, resp in zip(instances, responses):
        inst.resps = [resp]
    task.apply_filters()
    docs = list(task.eval_docs)
    out: dict[str, list[dict]] = {}
    for key in instances[0].filtered_resps:
        out[key] = [task.process_results(docs[i.doc_id], [i.filtered_resps[key]]) for i in instances]
    return out


def test_registry_entries():
    tasks = registry.all_tasks()
    expect = {
        "ifeval": ("target", "prompt_level_strict_acc,none", 0.0, None),
        "mmlu": ("target", "acc,none", 0.25, "subject"),
        "hellaswag": ("probe", "acc_norm,none", 0.25, None),
        "gsm8k": ("probe", "exact_match,flexible-extract", 0.0, None),
        "math500": ("probe", "exact_match,none", 0.0, None),
    }
    for name, (role, primary, chance, cluster) in expect.items():
        spec = tasks[name]
        assert (spec.role, spec.primary_metric, spec.chance, spec.cluster_key) == (role, primary, chance, cluster)
        assert spec.suites == (("core", "razor") if name in ("ifeval", "mmlu", "hellaswag") else ("core",))
        assert len(spec.sources) == 1 and spec.sources[0].hub
    assert tasks["ifeval"].extra_metrics == (
        "prompt_level_loose_acc,none",
        "inst_level_strict_acc,none",
        "inst_level_loose_acc,none",
    )
    assert tasks["gsm8k"].extra_metrics == ("exact_match,strict-match",)
    assert tasks["mmlu"].sources[0].describe() == "cais/mmlu/all:test"


def test_mmlu_prompt_choices_and_score(tm, tmp_path):
    task = _build(tm, "mmlu", MMLU_ROWS, tmp_path)
    inst = _requests(task)
    assert len(inst) == 8  # 2 docs x 4 choices
    ctx, cont = inst[0].arguments
    assert ctx == (
        "The following are multiple choice questions (with answers) about high school mathematics.\n\n"
        "What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 22\nAnswer:"
    )
    assert [i.arguments[1] for i in inst[:4]] == [" A", " B", " C", " D"]
    assert inst[4].arguments[0].startswith("The following are multiple choice questions (with answers) about anatomy.\n\n")
    doc = list(task.eval_docs)[0]
    right = [(-3.0, False), (-0.5, True), (-2.0, False), (-4.0, False)]
    wrong = [(-0.1, True), (-0.5, False), (-2.0, False), (-4.0, False)]
    assert task.process_results(doc, right)["acc"] == 1.0
    assert task.process_results(doc, wrong)["acc"] == 0.0


def test_mmlu_chat_template_puts_description_in_system_message(tm, tmp_path):
    task = _build(tm, "mmlu", MMLU_ROWS[1:], tmp_path)
    ctx = _requests(task, chat=True)[0].arguments[0]
    assert ctx == (
        "<system>The following are multiple choice questions (with answers) about anatomy.\n\n</system>"
        "<user>Which organ pumps blood?\nA. Lung\nB. Liver\nC. Heart\nD. Skin\nAnswer:</user><assistant>"
    )


@pytest.mark.parametrize("chat", [False, True])
def test_mmlu_matches_builtin_subject_task(tm, tm_builtin, tmp_path, chat):
    for row in MMLU_ROWS:
        ours = _requests(_build(tm, "mmlu", [row], tmp_path), chat=chat)
        theirs = _requests(_build(tm_builtin, f"mmlu_{row['subject']}", [row], tmp_path), chat=chat)
        assert [i.arguments for i in ours] == [i.arguments for i in theirs]
        assert ours[0].doc == theirs[0].doc


def test_hellaswag_prompt_and_scores(tm, tm_builtin, tmp_path):
    task = _build(tm, "hellaswag", HELLASWAG_ROWS, tmp_path)
    inst = _requests(task)
    # lm-eval's process_docs: "[title]" -> ". ", other [..] markers dropped, ctx_b capitalized
    assert inst[0].arguments[0] == "Making a sandwich: A man puts bread on a plate.. He Spreads"
    assert [i.arguments[1] for i in inst] == [" butter on it.", " the plate away.", " a car.", " to the moon."]
    theirs = _requests(_build(tm_builtin, "hellaswag", HELLASWAG_ROWS, tmp_path))
    assert [i.arguments for i in inst] == [i.arguments for i in theirs]
    doc = list(task.eval_docs)[0]
    # gold (0) has the best total loglikelihood but a long ending is cheaper per byte: acc 1, acc_norm 0
    scores = task.process_results(doc, [(-5.0, True), (-5.5, False), (-9.0, False), (-9.0, False)])
    assert scores["acc"] == 1.0
    assert scores["acc_norm"] == 0.0
    scores = task.process_results(doc, [(-1.0, True), (-5.5, False), (-9.0, False), (-9.0, False)])
    assert (scores["acc"], scores["acc_norm"]) == (1.0, 1.0)


def test_gsm8k_prompt_filters_and_scores(tm, tm_builtin, tmp_path):
    task = _build(tm, "gsm8k", GSM8K_ROWS, tmp_path)
    assert task.config.num_fewshot == 0
    inst = _requests(task)
    assert inst[0].arguments[0] == "Question: Janet has 3 boxes of 6 eggs. How many eggs does she have?\nAnswer:"
    assert inst[0].arguments[1]["until"][:3] == ["Question:", "</s>", "<|im_end|>"]
    assert inst[0].arguments[1]["max_gen_toks"] == 256
    theirs = _requests(_build(tm_builtin, "gsm8k", GSM8K_ROWS, tmp_path, num_fewshot=0))
    # same prompt and stops; the built-in leaves max_gen_toks unset, i.e. lm-eval's default 256
    assert [i.arguments[0] for i in inst] == [i.arguments[0] for i in theirs]
    assert [{**i.arguments[1], "max_gen_toks": 256} for i in theirs] == [i.arguments[1] for i in inst]

    def em(responses):
        scored = _score_generations(_build(tm, "gsm8k", GSM8K_ROWS, tmp_path), responses)
        return {f: [s["exact_match"] for s in rows] for f, rows in scored.items()}

    assert em(["3 boxes times 6 is 18. The answer is 18.", "The total is $1,234."]) == {
        "strict-match": [0.0, 0.0],
        "flexible-extract": [1.0, 1.0],
    }
    assert em(["18 eggs, so #### 18", "#### 1,234"]) == {"strict-match": [1.0, 1.0], "flexible-extract": [1.0, 1.0]}
    assert em(["The answer is 17.", "I don't know"]) == {"strict-match": [0.0, 0.0], "flexible-extract": [0.0, 0.0]}


def test_math500_prompt_and_boxed_equivalence(tm, tmp_path):
    task = _build(tm, "math500", MATH500_ROWS, tmp_path)
    ctx, gen = _requests(task)[0].arguments
    assert ctx.startswith("Problem:\nWhat is $\\frac{2}{4}$ in lowest terms?\n\n")
    assert "\\boxed{ANSWER}" in ctx and ctx.endswith("Solution:")
    assert gen["max_gen_toks"] == 1024
    doc = list(task.eval_docs)[0]

    def score(resp):
        return task.process_results(doc, [resp])

    assert score("Halve both: \\boxed{\\frac{1}{2}}") == {"exact_match": 1, "string_match": 1, "math_verify": 1}
    assert score("So it is \\boxed{0.5}.")["exact_match"] == 1
    assert score("First \\boxed{3}, no wait: \\boxed{\\dfrac{1}{2}}")["exact_match"] == 1  # last box counts
    assert score("\\boxed{\\frac{1}{3}}") == {"exact_match": 0, "string_match": 0, "math_verify": 0}
    assert score("The answer is 1/2.")["exact_match"] == 0  # no \boxed{}: the prompt asked for one


def test_ifeval_prompt_and_checkers(tm, tmp_path):
    task = _build(tm, "ifeval", IFEVAL_ROWS, tmp_path)
    ctx, gen = _requests(task)[0].arguments
    assert ctx == IFEVAL_ROWS[0]["prompt"]
    assert gen["max_gen_toks"] == 1280 and gen["until"] == []
    doc = list(task.eval_docs)[0]
    good = task.process_results(doc, ["cats are soft. dr. smith has one."])
    assert good["prompt_level_strict_acc"] is True
    assert good["inst_level_strict_acc"] == [True, True]
    upper = task.process_results(doc, ["Cats are soft. They purr."])
    assert upper["prompt_level_strict_acc"] is False
    assert upper["inst_level_strict_acc"] == [False, True]
    # three sentences breaks "fewer than 3"; "dr." must not count as a sentence end
    long = task.process_results(doc, ["cats are soft. dr. smith has one. they purr. they nap."])
    assert long["inst_level_strict_acc"] == [True, False]
    assert long["prompt_level_loose_acc"] is False


def test_ensure_punkt_tab_offline(tmp_path, monkeypatch):
    import nltk
    from nltk.tokenize import _get_punkt_tokenizer, sent_tokenize

    from forgetbench.tasks.punkt import ensure_punkt_tab

    monkeypatch.setenv("FORGETBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "no_nltk_data_here")])
    _get_punkt_tokenizer.cache_clear()
    with pytest.raises(LookupError):
        nltk.data.find("tokenizers/punkt_tab/english/")

    root = ensure_punkt_tab()
    assert root == tmp_path / "home" / "nltk_data"
    assert nltk.data.path[0] == str(root)
    lang = root / "tokenizers" / "punkt_tab" / "english"
    names = ["abbrev_types.txt", "collocations.tab", "ortho_context.tab", "sent_starters.txt"]
    assert sorted(p.name for p in lang.iterdir()) == names
    assert "dr" in (lang / "abbrev_types.txt").read_text().split("\n")
    assert Path(str(nltk.data.find("tokenizers/punkt_tab/english/"))) == lang

    mtimes = [(lang / n).stat().st_mtime_ns for n in names]
    assert ensure_punkt_tab() == root  # idempotent: nothing rewritten, path entry not duplicated
    assert [(lang / n).stat().st_mtime_ns for n in names] == mtimes
    assert nltk.data.path.count(str(root)) == 1

    _get_punkt_tokenizer.cache_clear()
    try:
        text = "Dr. Smith arrived at 5 p.m. on Monday. He met Mr. Jones. They talked."
        assert sent_tokenize(text) == ["Dr. Smith arrived at 5 p.m. on Monday.", "He met Mr. Jones.", "They talked."]
        assert sent_tokenize("It cost $3.88 in New York.  Please buy two.\n\nThanks.") == [
            "It cost $3.88 in New York.",
            "Please buy two.",
            "Thanks.",
        ]
    finally:
        _get_punkt_tokenizer.cache_clear()  # don't leave a tokenizer bound to tmp_path for other tests
