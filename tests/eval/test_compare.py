"""`forgetbench compare` on sample files that lm-eval itself writes (its evaluator with the scripted fake
backend, saved by lm-eval's EvaluationTracker as `lm_eval --log_samples --output_path` does)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forgetbench import stats
from forgetbench.cli import main as cli_main
from forgetbench.eval.compare import compare, find_samples
from forgetbench.errors import UserError
from forgetbench.eval.fake import FakeLM

N = 12
ROWS = [{"question": f"What is {i} + {i}?", "answer": str(2 * i), "q": f"Colour number {i}?",
         "choices": ["red", "green", "blue"], "label": i % 3} for i in range(N)]
A_RIGHT = set(range(8))  # A answers questions 0-7, B 0-4 and 9-10: B forgot 5, 6, 7 and learned 9, 10
B_RIGHT = set(range(5)) | {9, 10}

GEN_YAML = """
task: fbcmp_gen
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
filter_list:
  - name: strict
    filter:
      - function: regex
        regex_pattern: "^(\\\\d+)$"
      - function: take_first
  - name: loose
    filter:
      - function: regex
        regex_pattern: "(\\\\d+)"
      - function: take_first
"""
MC_YAML = """
task: fbcmp_mc
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


def script(right: set[int], name: str) -> dict:
    # B answers with a trailing word: only the loose filter extracts its numbers
    tail = "" if name == "A" else " exactly"
    return {"name": name, "default_response": "no idea",
            "generate": [{"match": f"What is {i} + {i}?", "response": f"{2 * i if i in right else 2 * i + 1}{tail}"}
                         for i in range(N)],
            "choose": [{"match": f"Colour number {i}?", "continuation": r["choices"][r["label"] if i in right else
                                                                                     (r["label"] + 1) % 3]}
                       for i, r in enumerate(ROWS)]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two lm-eval output folders written by lm-eval (A and B), plus a B run on fewer rows."""
    from lm_eval import evaluator
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    root = tmp_path_factory.mktemp("compare")
    rows = root / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / "gen.yaml").write_text(GEN_YAML.format(rows=rows))
    (tasks / "mc.yaml").write_text(MC_YAML.format(rows=rows))

    def run(name: str, right: set[int], out: str, limit=None):
        tracker = EvaluationTracker(output_path=str(root / out))
        res = evaluator.simple_evaluate(model=FakeLM(script(right, name)), tasks=["fbcmp_gen", "fbcmp_mc"],
                                        task_manager=TaskManager(include_path=str(tasks), include_defaults=False),
                                        log_samples=True, evaluation_tracker=tracker, limit=limit, bootstrap_iters=0)
        samples = res.pop("samples")  # what lm_eval's CLI does with --log_samples --output_path
        tracker.save_results_aggregated(results=res, samples=samples)
        for task in res["configs"]:
            tracker.save_results_samples(task_name=task, samples=samples[task])
        return root / out

    return run("A", A_RIGHT, "a"), run("B", B_RIGHT, "b"), run("B", B_RIGHT, "b_limited", limit=8)


def test_rows_follow_the_scripts(runs):
    a, b, _ = runs
    rows, notes = compare(a, b)
    got = {(r.task, r.filter, r.metric): r for r in rows}
    assert set(got) == {("fbcmp_gen", "loose", "exact_match"), ("fbcmp_gen", "strict", "exact_match"),
                        ("fbcmp_mc", "none", "acc")} and notes == []
    xa = np.array([float(i in A_RIGHT) for i in range(N)])
    xb = np.array([float(i in B_RIGHT) for i in range(N)])
    want = stats.paired_interval(xa, xb)
    for key in (("fbcmp_gen", "loose", "exact_match"), ("fbcmp_mc", "none", "acc")):
        r = got[key]
        assert (r.n, r.a, r.b, r.a_higher, r.b_higher) == (N, 8 / N, 7 / N, 3, 2), key
        assert (r.delta, r.lo, r.hi, r.method) == (want.value, want.lo, want.hi, "tango")
        assert r.p_mcnemar == stats.mcnemar_exact(3, 2) == 1.0 and r.higher_is_better is True
    strict = got[("fbcmp_gen", "strict", "exact_match")]  # B's trailing word fails the strict filter everywhere
    assert (strict.b, strict.a_higher, strict.b_higher) == (0.0, 8, 0)
    assert strict.p_mcnemar == pytest.approx(2 / 2**8) and strict.hi < 0


def test_cli_table_and_json(runs, capsys):
    a, b, _ = runs
    samples = find_samples(a, "A")["fbcmp_mc"]
    assert cli_main(["compare", str(samples), str(find_samples(b, "B")["fbcmp_mc"])]) == 0
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if x.startswith("fbcmp_mc"))
    assert line.split()[:6] == ["fbcmp_mc", "none", "acc", "12", "66.7", "58.3"] and line.split()[-3:] == ["3", "2", "1.000"]
    assert cli_main(["compare", str(a), str(b), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["intervals"] == stats.settings() and len(out["rows"]) == 3
    assert {r["method"] for r in out["rows"]} == {"tango"}


def test_different_items_are_refused(runs, capsys):
    a, _, limited = runs
    with pytest.raises(UserError, match=r"different items: 4 of A's 12 and 0 of B's 8"):
        compare(a, limited)
    assert cli_main(["compare", str(a), str(limited)]) == 2
    assert "forgetbench: error: task fbcmp_gen" in capsys.readouterr().err


def test_inputs_that_are_not_sample_files(tmp_path, runs):
    a, _, _ = runs
    with pytest.raises(UserError, match="no samples_"):
        compare(tmp_path, a)
    (tmp_path / "x.jsonl").write_text("{}\n")
    with pytest.raises(UserError, match="not an lm-eval samples file"):
        compare(tmp_path / "x.jsonl", a)
    other = tmp_path / "o"
    other.mkdir()
    (other / "samples_elsewhere_2024-01-01T00-00-00.000000.jsonl").write_text('{"doc_id": 0, "doc_hash": "h"}\n')
    with pytest.raises(UserError, match="no task in common"):
        compare(a, other)


def test_list_metrics_are_weighted_by_their_length(tmp_path):
    def write(folder, values):
        folder.mkdir()
        lines = [json.dumps({"doc_id": i, "doc_hash": f"h{i}", "filter": "none", "metrics": ["inst", "prompt"],
                             "inst": v, "prompt": all(v)}) for i, v in enumerate(values)]
        (folder / "samples_ife_2024-01-01T00-00-00.000000.jsonl").write_text("\n".join(lines) + "\n")

    write(tmp_path / "a", [[True], [False, False, False]])
    write(tmp_path / "b", [[True], [True, False, False]])
    rows, _ = compare(tmp_path / "a", tmp_path / "b")
    inst = next(r for r in rows if r.metric == "inst")
    assert (inst.a, inst.b, inst.delta, inst.method) == (0.25, 0.5, 0.25, "tango-deff")  # micro mean over 4 instructions
