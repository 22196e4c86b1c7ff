"""lite_arith: templated arithmetic word problems (1-3 steps) with integer answers, gsm8k-shaped.

Rows are `{question, answer}` where `answer` is the worked solution, one "expr = value" line per step,
ending in "#### N" like openai/gsm8k, so the task reuses gsm8k's answer extraction and exact match.
Every intermediate and final value is a non-negative integer (divisions are built to be exact).
"""

from __future__ import annotations

import random
from collections.abc import Callable

NAMES = ("Ava", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hiro", "Isla", "Jonas", "Kira", "Leo",
         "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq")
ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "books", "stamps", "shells", "cards",
         "balloons", "eggs", "buttons")

Problem = tuple[str, list[tuple[str, int]]]  # question, steps (expression, value)


def _add(r: random.Random, name: str, item: str) -> Problem:
    a, b = r.randint(3, 60), r.randint(2, 40)
    return (f"{name} has {a} {item}. {name} buys {b} more {item}. How many {item} does {name} have now?",
            [(f"{a} + {b}", a + b)])


def _sub(r: random.Random, name: str, item: str) -> Problem:
    a = r.randint(10, 90)
    b = r.randint(1, a - 1)
    return (f"{name} had {a} {item} and gave {b} of them to a friend. How many {item} does {name} have left?",
            [(f"{a} - {b}", a - b)])


def _mul(r: random.Random, name: str, item: str) -> Problem:
    a, b = r.randint(2, 12), r.randint(2, 12)
    return (f"{name} has {a} boxes with {b} {item} in each box. How many {item} does {name} have in total?",
            [(f"{a} * {b}", a * b)])


def _div(r: random.Random, name: str, item: str) -> Problem:
    q, d = r.randint(2, 12), r.randint(2, 9)
    return (f"{name} shares {q * d} {item} equally among {d} friends. How many {item} does each friend get?",
            [(f"{q * d} / {d}", q)])


def _buy_then_eat(r: random.Random, name: str, item: str) -> Problem:
    a, b = r.randint(2, 9), r.randint(3, 12)
    c = r.randint(1, a * b - 1)
    return (f"{name} buys {a} packs of {item} with {b} {item} in each pack, then uses {c} of them. "
            f"How many {item} are left?",
            [(f"{a} * {b}", a * b), (f"{a * b} - {c}", a * b - c)])


def _buy_then_give(r: random.Random, name: str, item: str) -> Problem:
    a, b = r.randint(5, 50), r.randint(2, 30)
    c = r.randint(1, a + b - 1)
    return (f"{name} has {a} {item}, buys {b} more and then gives {c} away. How many {item} does {name} "
            f"have now?",
            [(f"{a} + {b}", a + b), (f"{a + b} - {c}", a + b - c)])


def _wage(r: random.Random, name: str, item: str) -> Problem:
    p, h1, h2 = r.randint(5, 20), r.randint(2, 8), r.randint(2, 8)
    return (f"{name} earns {p} dollars per hour. {name} works {h1} hours on Monday and {h2} hours on "
            f"Tuesday. How many dollars does {name} earn in total?",
            [(f"{h1} + {h2}", h1 + h2), (f"{p} * {h1 + h2}", p * (h1 + h2))])


def _change(r: random.Random, name: str, item: str) -> Problem:
    price, a, b = r.randint(2, 9), r.randint(1, 6), r.randint(1, 6)
    total = price * (a + b)
    bill = next(x for x in (10, 20, 50, 100, 200) if x >= total)
    return (f"A shop sells {item} for {price} dollars each. {name} buys {a} and a friend buys {b}. "
            f"They pay together with a {bill} dollar bill. How many dollars of change do they get?",
            [(f"{a} + {b}", a + b), (f"{price} * {a + b}", total), (f"{bill} - {total}", bill - total)])


def _split(r: random.Random, name: str, item: str) -> Problem:
    d, q = r.randint(2, 6), r.randint(3, 12)
    bags, per = r.randint(1, 4), r.randint(2, 6)
    if q * d <= bags * per:
        q = bags * per // d + 1
    start = q * d - bags * per
    return (f"{name} has {start} {item} and buys {bags} bags with {per} {item} in each bag. {name} then "
            f"splits all the {item} equally among {d} friends. How many {item} does each friend get?",
            [(f"{bags} * {per}", bags * per), (f"{start} + {bags * per}", q * d), (f"{q * d} / {d}", q)])


TEMPLATES: tuple[Callable[[random.Random, str, str], Problem], ...] = (
    _add, _sub, _mul, _div, _buy_then_eat, _buy_then_give, _wage, _change, _split,
)


def solution_text(steps: list[tuple[str, int]]) -> str:
    return "\n".join(f"{expr} = {value}" for expr, value in steps) + f"\n#### {steps[-1][1]}"


def generate(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        template = TEMPLATES[i % len(TEMPLATES)]  # round-robin keeps the 1/2/3-step mix fixed
        question, steps = template(rng, rng.choice(NAMES), rng.choice(ITEMS))
        rows.append({"question": question, "answer": solution_text(steps)})
    return rows
