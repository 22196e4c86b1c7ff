"""HumanEval scoring: lm-eval's program assembly, run in forgetbench's sandbox.

lm-eval's humaneval tasks build the candidate program with a filter (`build_predictions`: the prompt
plus the completion; `build_predictions_instruct`: the same, cut at the first ``` of the completion),
append the reference `test + "\\ncheck(entry_point)"` and hand it to HF evaluate's code_eval, which
execs it in a forked process with a 3 s timeout: pass@1 of one greedy sample is 1 iff it ran without
an exception. The two filters are copied verbatim (lm-eval's utils module cannot be imported offline:
it loads code_eval from the hub at import time); the program runs in forgetbench.tasks.scoring.sandbox.
"""

from __future__ import annotations

from forgetbench.tasks.scoring import sandbox


def build_predictions(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    return [[doc["prompt"] + r for r in resp] for resp, doc in zip(resps, docs)]


def build_predictions_instruct(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    return [
        [doc["prompt"] + (r if r.find("```") == -1 else r[: r.find("```")]) for r in resp]
        for resp, doc in zip(resps, docs)
    ]


def test_program(doc: dict, candidate: str) -> str:
    """code_eval's `candidate + "\\n" + reference`, the reference being the task's doc_to_target."""
    return candidate + "\n" + f"{doc['test']}\ncheck({doc['entry_point']})"


def passes(doc: dict, candidate: str, limits: sandbox.Limits = sandbox.Limits()) -> bool:
    return sandbox.run(test_program(doc, candidate), limits, allowed=sandbox.confirmed()).passed


def process_results(doc: dict, results: list) -> dict[str, int]:
    """lm-eval hook: results[0] is the filter's list of candidate programs (one: greedy pass@1)."""
    candidates = results[0] if isinstance(results[0], list) else [results[0]]
    return {"pass@1": int(passes(doc, candidates[0]))}
