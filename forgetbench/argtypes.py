"""argparse types for numeric options: a value outside its range is one clear line naming the option
(argparse's "argument --seed: must be in [0, 4294967295], got -1"), before any work starts."""

from __future__ import annotations

import argparse


def integer(lo: int, hi: int | None = None):
    """An argparse type: an integer in [lo, hi] (a clear message naming the option otherwise)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be {f'in [{lo}, {hi}]' if hi is not None else f'at least {lo}'},"
                                             f" got {v}")
        return v
    return parse


def fraction(text: str) -> float:
    """An argparse type: a number in (0, 1]."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return v


def positive(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (v > 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


SEED = integer(0, 2**32 - 1)  # numpy/torch seeds are 32-bit
COUNT = integer(1)
