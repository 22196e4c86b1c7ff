"""MATH-500 scoring: is the response's last \\boxed{...} equivalent to the gold answer?

Two independent equivalence checks, both reused rather than rewritten:
  string_match  lm-eval's hendrycks_math `is_equiv`: the classic MATH normalization (strip spaces,
                units, \\left/\\right, dfrac->frac, "\\frac12"->"\\frac{1}{2}", ...) then string equality;
  math_verify   HF math-verify: parse both sides to sympy and compare symbolically (0.5 == \\frac12,
                intervals, tuples, sets).
exact_match (the primary) is 1 when either says equivalent: each catches forms the other misses, and
a forgetting probe should not score a change of notation as forgetting. A response with no \\boxed{}
scores 0 everywhere: the prompt asks for one.
(lm-eval's minerva_math utils hold a sympy `is_equiv` too, but that module refuses to import unless
antlr4-python3-runtime is pinned to 4.11, which math-verify does not need.)
"""

from __future__ import annotations

import threading

from lm_eval.tasks.hendrycks_math.utils import is_equiv, last_boxed_only_string, remove_boxed


def boxed_answer(text: str) -> str | None:
    """Content of the last \\boxed{...} (or "\\boxed x") in text; None when there is none."""
    box = last_boxed_only_string(text)
    if box is None:
        return None
    try:
        return remove_boxed(box)
    except AssertionError:  # "\fbox{...}" or an unbalanced box
        return None


def math_verify_equal(gold: str, pred: str) -> bool:
    from math_verify import parse, verify

    # math-verify times out parsing through SIGALRM, which only the main thread may set.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        g = parse("\\boxed{" + gold + "}", parsing_timeout=timeout)
        p = parse("\\boxed{" + pred + "}", parsing_timeout=timeout)
        return bool(g and p and verify(g, p, timeout_seconds=timeout))
    except Exception:  # noqa: BLE001 - an unparsable answer is simply not a match
        return False


def process_results(doc: dict, results: list[str]) -> dict[str, int]:
    pred = boxed_answer(results[0])
    gold = doc["answer"]
    string_match = int(pred is not None and bool(is_equiv(pred, gold)))
    mv = int(pred is not None and math_verify_equal(gold, pred))
    return {"exact_match": int(string_match or mv), "string_match": string_match, "math_verify": mv}
