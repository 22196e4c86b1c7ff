"""lite_countdown: three small numbers and a target that is always reachable.

Rows have the hub schema of Jiayi-Pan/Countdown-Tasks-3to4 (`target`, `nums`), and are scored by the
same prompt and checker (forgetbench.tasks.scoring.countdown), so lite_countdown is a fast stand-in for the
countdown target. Targets are drawn uniformly from the values reachable with integer, non-negative
intermediate results, so every puzzle has a "clean" solution that `expert_response` can show.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from fractions import Fraction

N_NUMS = 3
NUM_RANGE = (1, 20)
TARGET_RANGE = (1, 100)

# (symbol, function or None when undefined); order fixes which solution `solve` reports first.
_OPS = (
    ("+", lambda a, b: a + b),
    ("*", lambda a, b: a * b),
    ("-", lambda a, b: a - b),
    ("/", lambda a, b: a / b if b != 0 else None),
)

# An item on the search stack: (exact value, expression text, is a bare number, steps so far).
_Item = tuple[Fraction, str, bool, tuple[str, ...]]


def _wrap(item: _Item) -> str:
    return item[1] if item[2] else f"({item[1]})"


def _fmt(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def _expressions(items: tuple[_Item, ...], clean: bool) -> Iterator[_Item]:
    """Every expression using all items, built by repeatedly combining two of them (which reaches
    every binary expression tree). `clean` keeps only integer, non-negative intermediates."""
    if len(items) == 1:
        yield items[0]
        return
    for i in range(len(items)):
        for j in range(len(items)):
            if i == j:
                continue
            a, b = items[i], items[j]
            rest = tuple(x for k, x in enumerate(items) if k not in (i, j))
            for sym, fn in _OPS:
                if sym in "+*" and i > j:
                    continue  # commutative: one order is enough
                v = fn(a[0], b[0])
                if v is None or (clean and (v < 0 or v.denominator != 1)):
                    continue
                step = f"{_fmt(a[0])} {sym} {_fmt(b[0])} = {_fmt(v)}"
                new: _Item = (v, f"{_wrap(a)} {sym} {_wrap(b)}", False, a[3] + b[3] + (step,))
                yield from _expressions((new,) + rest, clean)  # new first: "(a + b) * c"


def _start(nums: Sequence[int]) -> tuple[_Item, ...]:
    return tuple((Fraction(int(n)), str(int(n)), True, ()) for n in nums)


def _solution(nums: Sequence[int], target: int) -> _Item | None:
    goal = Fraction(int(target))
    for clean in (True, False):  # prefer a solution a person would write down
        for item in _expressions(_start(nums), clean):
            if item[0] == goal:
                return item
    return None


def solve(nums: Sequence[int], target: int) -> str | None:
    """An expression using every number exactly once that equals `target`, or None."""
    found = _solution(nums, target)
    return found[1] if found else None


def expert_response(row: dict) -> str:
    """A short correct response in the countdown answer format (one-line think, then the answer)."""
    found = _solution(row["nums"], row["target"])
    if found is None:
        raise ValueError(f"no solution for {row}")
    return f"<think>{', '.join(found[3])}</think>\n<answer>{found[1]}</answer>"


def generate(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows: list[dict] = []
    seen: set[tuple] = set()
    while len(rows) < n:
        nums = [rng.randint(*NUM_RANGE) for _ in range(N_NUMS)]
        reachable = sorted(
            {
                int(item[0])
                for item in _expressions(_start(nums), clean=True)
                if TARGET_RANGE[0] <= item[0] <= TARGET_RANGE[1]
            }
        )
        if not reachable:
            continue
        target = rng.choice(reachable)
        if (target, *nums) in seen:
            continue
        seen.add((target, *nums))
        rows.append({"target": target, "nums": nums})
    return rows
