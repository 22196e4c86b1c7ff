"""lite_mc: generated 4-way multiple-choice questions, scored by loglikelihood of each choice.

Rows are `{question, choices, answer, category}` (`answer` indexes `choices`), covering small facts a
135M instruct model mostly knows — sums, the largest number, unit conversions, calendar order,
opposites — so a drop after fine-tuning is forgetting, not noise around chance (0.25).
Choices are ranked by the model's likelihood of the choice text after "Answer:", as in ARC/MMLU-style
continuation scoring; the correct choice's position is uniform.
"""

from __future__ import annotations

import random

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
OPPOSITES = (("hot", "cold"), ("big", "small"), ("fast", "slow"), ("up", "down"), ("open", "closed"),
             ("early", "late"), ("happy", "sad"), ("light", "dark"), ("full", "empty"), ("wet", "dry"),
             ("old", "new"), ("loud", "quiet"), ("hard", "soft"), ("rich", "poor"), ("inside", "outside"))
# (larger unit, smaller unit, factor): "How many {small} are in {k} {large}?"
UNITS = (("hours", "minutes", 60), ("minutes", "seconds", 60), ("days", "hours", 24),
         ("weeks", "days", 7), ("meters", "centimeters", 100), ("kilograms", "grams", 1000),
         ("dozens", "items", 12), ("years", "months", 12))


def _numeric_distractors(r: random.Random, right: int, spread: list[int]) -> list[int]:
    wrong: list[int] = []
    for d in r.sample(spread, len(spread)):
        if len(wrong) == 3:
            break
        if right + d > 0 and right + d not in wrong:
            wrong.append(right + d)
    return wrong


def _add(r: random.Random):
    a, b = r.randint(2, 50), r.randint(2, 50)
    right = a + b
    wrong = _numeric_distractors(r, right, [-10, -2, -1, 1, 2, 10])
    return f"What is {a} + {b}?", str(right), [str(x) for x in wrong]


def _largest(r: random.Random):
    nums = r.sample(range(1, 100), 4)
    right = max(nums)
    listed = ", ".join(str(x) for x in nums[:3]) + f" or {nums[3]}"
    return f"Which number is the largest: {listed}?", str(right), [str(x) for x in nums if x != right]


def _units(r: random.Random):
    large, small, factor = r.choice(UNITS)
    k = r.randint(2, 9)
    right = k * factor
    wrong = [(k + 1) * factor, k * factor // 2 if factor % 2 == 0 else (k - 1) * factor, k * factor * 10]
    return f"How many {small} are in {k} {large}?", str(right), [str(x) for x in wrong]


def _next_in(r: random.Random, seq: tuple[str, ...], what: str):
    i = r.randrange(len(seq))
    step, where = (1, "after") if r.random() < 0.5 else (-1, "before")
    right = seq[(i + step) % len(seq)]
    wrong = r.sample([s for s in seq if s not in (right, seq[i])], 3)
    return f"Which {what} comes right {where} {seq[i]}?", right, wrong


def _opposite(r: random.Random):
    pair = r.choice(OPPOSITES)
    word, right = pair if r.random() < 0.5 else pair[::-1]
    others = [w for p in OPPOSITES if p != pair for w in p]
    return f"What is the opposite of \"{word}\"?", right, r.sample(others, 3)


def generate(n: int, seed: int) -> list[dict]:
    """n rows, no question twice (a repeated question would count double). Categories take turns; one
    whose questions are used up (day: 14, month: 24, opposite: 30, units: 64) gives its turn to the next."""
    rng = random.Random(seed)
    makers = (
        ("addition", _add),
        ("largest", _largest),
        ("units", _units),
        ("day", lambda r: _next_in(r, DAYS, "day of the week")),
        ("month", lambda r: _next_in(r, MONTHS, "month")),
        ("opposite", _opposite),
    )
    rows, seen, exhausted = [], set(), set()
    turn = 0
    while len(rows) < n:
        if len(exhausted) == len(makers):
            raise ValueError(f"lite_mc: the generator has fewer than {n} distinct questions")
        category, make = makers[turn % len(makers)]
        turn += 1
        if category in exhausted:
            continue
        for _ in range(200):  # rejection sampling; 200 misses in a row: this category is used up
            question, right, wrong = make(rng)
            if question not in seen:
                break
        else:
            exhausted.add(category)
            continue
        seen.add(question)
        choices = list(wrong)
        answer = rng.randrange(4)
        choices.insert(answer, right)
        rows.append({"question": question, "choices": choices, "answer": answer, "category": category})
    return rows
