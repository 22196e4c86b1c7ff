"""Countdown: reach a target number using each given number exactly once with + - * /.

The answer format (TinyZero style) is defined here once, both the prompt that asks for it and the
checker that grades it, so the countdown target, the lite_countdown target and an RL reward agree.

Grading rules (`reason` returns the first rule that fails):

- no_answer:   the response has no `<answer>` tag. The LAST `<answer>` wins, so a model may draft
               earlier answers while thinking. Its text runs to the next `</answer>` or, when that tag
               is missing, to the end of the response: lm-eval removes the stop sequence `</answer>`
               from generations, so an unclosed final tag is the normal shape of an eval response.
- unparseable: the expression is not made only of integer literals, binary + - * / and parentheses.
               It is parsed with `ast` and walked by hand (never `eval`): unary minus, floats, `**`,
               `//`, `=`, names and calls are all rejected. Writing "= 16" after the expression
               therefore fails; the prompt asks for the expression only.
- bad_numbers: the multiset of integer literals differs from `nums` (a number reused, missing, or
               not given).
- div_zero:    some division has a zero divisor.
- wrong_value: the exact value (fractions.Fraction, so (1 / 2) * 4 == 2 holds with no rounding, and
               non-integer intermediates are allowed) differs from the target.
- correct
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

REASONS = ("correct", "no_answer", "unparseable", "bad_numbers", "div_zero", "wrong_value")

OPEN, CLOSE = "<answer>", "</answer>"

# Longer "expressions" are model rambling, not answers; the cap also keeps ast's recursion bounded.
MAX_EXPR_CHARS = 300

_OPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


def prompt(nums: Sequence[int], target: int) -> str:
    """The user turn for one puzzle (shared by countdown and lite_countdown)."""
    listed = ", ".join(str(n) for n in nums)
    return (
        f"Using the numbers [{listed}], write an arithmetic expression that equals {target}. "
        "Use each number exactly once; you may use +, -, *, / and parentheses. "
        "Think briefly inside <think> </think>, then give only the final expression inside "
        "<answer> </answer>, for example <answer>(1 + 2) * 3</answer>."
    )


def parse(response: str) -> str | None:
    """The text of the last `<answer>` tag (stripped), or None when there is no tag."""
    start = response.rfind(OPEN)
    if start < 0:
        return None
    body = response[start + len(OPEN) :]
    end = body.find(CLOSE)
    return (body if end < 0 else body[:end]).strip()


class _DivZero(Exception):
    pass


def _literals(node: ast.AST, out: list[int]) -> bool:
    """Collect integer literals; False when the tree has anything outside the grammar."""
    if isinstance(node, ast.Constant):
        if type(node.value) is not int:  # bool is an int subclass; floats/strings are not allowed
            return False
        out.append(node.value)
        return True
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _literals(node.left, out) and _literals(node.right, out)
    return False


def _value(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    left, right = _value(node.left), _value(node.right)
    if isinstance(node.op, ast.Div) and right == 0:
        raise _DivZero
    return _OPS[type(node.op)](left, right)


def evaluate(expr: str) -> tuple[str, list[int], Fraction | None]:
    """(status, integer literals, exact value) of an expression; status is "ok", "unparseable" or
    "div_zero"."""
    if not expr or len(expr) > MAX_EXPR_CHARS:
        return "unparseable", [], None
    try:
        tree = ast.parse(expr, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "unparseable", [], None
    lits: list[int] = []
    if not _literals(tree, lits):
        return "unparseable", [], None
    try:
        return "ok", lits, _value(tree)
    except _DivZero:
        return "div_zero", lits, None


def check(expr: str | None, nums: Sequence[int], target: int) -> str:
    """Grade an already extracted expression; returns one of REASONS."""
    if expr is None:
        return "no_answer"
    status, lits, value = evaluate(expr)
    if status == "unparseable":
        return status
    if Counter(lits) != Counter(int(n) for n in nums):
        return "bad_numbers"
    if status == "div_zero":
        return status
    return "correct" if value == Fraction(int(target)) else "wrong_value"


def reason(response: str, nums: Sequence[int], target: int) -> str:
    """Why a response is right or wrong: one of REASONS (for diagnostics)."""
    return check(parse(response or ""), nums, target)


def score(response: str, nums: Sequence[int], target: int) -> float:
    """1.0 when the last answer uses exactly `nums` and equals `target`, else 0.0."""
    return 1.0 if reason(response, nums, target) == "correct" else 0.0
