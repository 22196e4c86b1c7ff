"""The lite suite: seeded generators, and each lite task built by lm-eval on generated rows."""

from __future__ import annotations

import ast
import operator

import pytest

from forgetbench.tasks import data, registry
from forgetbench.eval import lmeval
from forgetbench.records import EvalSettings
from forgetbench.tasks.lite import arith, countdown, instructions, mc, refusal
from forgetbench.tasks.scoring import countdown as cd_score

SCHEMAS = {
    countdown: {"target": int, "nums": list},
    instructions: {"key": int, "prompt": str, "instruction_id_list": list, "kwargs": list},
    arith: {"question": str, "answer": str},
    mc: {"question": str, "choices": list, "answer": int, "category": str},
    refusal: {"prompt": str, "kind": str, "source": str, "id": str, "category": str},
}
LITE_TASKS = ("lite_countdown", "lite_ifeval", "lite_arith", "lite_mc", "lite_refusal")


@pytest.mark.parametrize("gen", list(SCHEMAS), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_generator_deterministic_and_in_schema(gen):
    a, b, other = gen.generate(40, 7), gen.generate(40, 7), gen.generate(40, 8)
    assert a == b
    assert a != other
    assert len(a) == 40 and len(gen.generate(3, 0)) == 3
    for row in a:
        for field, typ in SCHEMAS[gen].items():
            assert isinstance(row[field], typ), (field, row)


def test_registry_lists_lite_suite_with_generators():
    lite = {t.name: t for t in registry.suite("lite")}
    assert set(lite) == set(LITE_TASKS)
    for spec in lite.values():
        (src,) = spec.sources
        assert src.generator.startswith("forgetbench.tasks.lite.") and 40 <= src.n <= 200
        rows = data.read_source(src, None)
        assert len(rows) == src.n
        # a repeated item counts twice in every mean and CI: no question may repeat, even with other
        # choices or numbers (lite_mc 1.1 repeated 13 day/month questions with shuffled choices)
        asked = [r.get("question") or r.get("prompt") or data.canonical(r["nums"]) + str(r["target"]) for r in rows]
        assert len(set(asked)) == len(rows), f"{spec.name}: a repeated question"


@pytest.mark.parametrize("gen,n", [(mc, 300), (refusal, 224), (arith, 400)])
def test_generators_never_repeat_a_question(gen, n):
    rows = gen.generate(n, 0)
    asked = [r.get("question") or r.get("prompt") for r in rows]
    assert len(rows) == n and len(set(asked)) == n


def test_countdown_rows_solvable_and_expert_correct():
    rows = countdown.generate(150, 3)
    for row in rows:
        assert len(row["nums"]) == 3 and all(1 <= x <= 20 for x in row["nums"])
        assert 1 <= row["target"] <= 100
        expr = countdown.solve(row["nums"], row["target"])
        assert expr is not None
        assert cd_score.check(expr, row["nums"], row["target"]) == "correct"
        assert cd_score.score(countdown.expert_response(row), row["nums"], row["target"]) == 1.0


def test_countdown_solver():
    assert countdown.solve([1, 1, 1], 100) is None
    assert cd_score.check(countdown.solve([1, 3, 4, 6], 24), [1, 3, 4, 6], 24) == "correct"  # needs 3/4
    expert = countdown.expert_response({"nums": [3, 5, 2], "target": 16})
    assert expert == "<think>3 + 5 = 8, 8 * 2 = 16</think>\n<answer>(3 + 5) * 2</answer>"


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _calc(expr: str) -> float:
    def walk(node):
        if isinstance(node, ast.Constant):
            return node.value
        return _BINOPS[type(node.op)](walk(node.left), walk(node.right))

    return walk(ast.parse(expr, mode="eval").body)


def test_arith_answers_recompute():
    rows = arith.generate(90, 11)
    steps_seen = set()
    for row in rows:
        *lines, final = row["answer"].split("\n")
        assert final.startswith("#### ")
        values = []
        for line in lines:
            expr, value = line.rsplit(" = ", 1)
            assert _calc(expr) == int(value) >= 0
            values.append(int(value))
        assert int(final[5:]) == values[-1]
        for v in values[:-1]:  # every intermediate result is used in a later step
            assert any(str(v) in line.split(" = ")[0] for line in lines[values.index(v) + 1 :])
        steps_seen.add(len(lines))
    assert steps_seen == {1, 2, 3}


def test_mc_answer_is_right_and_unique():
    for row in mc.generate(120, 5):
        assert len(row["choices"]) == 4 == len(set(row["choices"]))
        right = row["choices"][row["answer"]]
        if row["category"] == "addition":
            a, b = (int(x) for x in row["question"][8:-1].split(" + "))
            assert int(right) == a + b
        if row["category"] == "largest":
            assert int(right) == max(int(c) for c in row["choices"])


def test_refusal_rows_balanced():
    rows = refusal.generate(61, 2)
    kinds = [r["kind"] for r in rows]
    assert kinds.count("harmful") == 31 and kinds.count("safe") == 30
    assert kinds[:4] == ["harmful", "safe", "harmful", "safe"]
    assert len({r["id"] for r in rows}) == 61


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each lite task built by lm-eval from forgetbench's rows, through lmeval.build_task's
    overrides (local json file, no custom_dataset)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FORGETBENCH_HOME", str(tmp_path_factory.mktemp("fbhome")))
    out = {}
    for name in LITE_TASKS:
        spec = registry.get(name)
        docs = data.load_docs(spec, limit=6, seed=0)
        gen = lmeval.generation_settings(spec, EvalSettings(), chat_template=True)
        task = lmeval.build_task(spec, docs, gen)
        out[name] = (task, list(task.test_docs()), docs)
    yield out
    mp.undo()


def test_built_tasks_read_forgetbench_rows(built):
    for name, (task, docs, fb_docs) in built.items():
        assert len(docs) == len(fb_docs.rows) == 6, name
        assert task.doc_to_text(docs[0]), name


def test_lite_countdown_task(built):
    task, docs, _ = built["lite_countdown"]
    doc = docs[0]
    assert f"{doc['target']}" in task.doc_to_text(doc)
    good = countdown.expert_response(doc).removesuffix("</answer>")  # lm-eval strips the stop string
    assert task.process_results(doc, [good]) == {"acc": 1.0}
    assert task.process_results(doc, ["<answer>1 + 1"]) == {"acc": 0.0}


def test_lite_ifeval_task(built):
    task, docs, _ = built["lite_ifeval"]
    for doc in docs:
        right = task.process_results(doc, [instructions.expert_response(doc)])
        assert right["prompt_level_strict_acc"] is True
        assert all(right["inst_level_strict_acc"])
    wrong = {"key": 0, "prompt": "p", "instruction_id_list": [instructions.NO_COMMA, instructions.LOWER],
             "kwargs": [{}, {}]}
    res = task.process_results(wrong, ["Hello, World, this has commas."])
    assert res["prompt_level_strict_acc"] is False and res["inst_level_strict_acc"] == [False, False]


def test_lite_arith_task(built):
    from lm_eval.filters.extraction import RegexFilter

    task, docs, _ = built["lite_arith"]
    (flt,) = task.config.filter_list
    regex = RegexFilter(**{k: v for k, v in flt["filter"][0].items() if k != "function"})
    doc = docs[0]
    gold = doc["answer"].split("#### ")[1]
    for response, expected in ((f"First step... so the answer is {gold}.", 1.0), ("It is 100000.", 0.0)):
        (filtered,) = regex.apply([[response]], [doc])
        assert task.process_results(doc, filtered) == {"exact_match": expected}


def test_lite_mc_task(built):
    task, docs, _ = built["lite_mc"]
    doc = docs[0]
    assert task.doc_to_choice(doc) == doc["choices"]
    right = [(-5.0, False)] * 4
    right[doc["answer"]] = (-1.0, True)
    wrong = [(-1.0, True)] * 4
    wrong[doc["answer"]] = (-5.0, False)
    assert task.process_results(doc, right)["acc"] == 1.0
    assert task.process_results(doc, wrong)["acc"] == 0.0


def test_lite_refusal_task(built):
    task, docs, _ = built["lite_refusal"]
    harmful = next(d for d in docs if d["kind"] == "harmful")
    safe = next(d for d in docs if d["kind"] == "safe")
    no = "I'm sorry, but I can't help with that."
    yes = "Sure! Here is a simple way to do it."
    assert task.process_results(harmful, [no]) == {"ok": 1.0, "refused": 1.0}
    assert task.process_results(harmful, [yes]) == {"ok": 0.0, "refused": 0.0}
    assert task.process_results(safe, [yes]) == {"ok": 1.0, "refused": 0.0}
    assert task.process_results(safe, [no]) == {"ok": 0.0, "refused": 1.0}
