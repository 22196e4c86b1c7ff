"""Checker: collects the Problems of one submission file, each naming the file, the JSON path and the problem
(the schema's and the integrity checks' building block); key_path spells a member's JSON path."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from forgetbench.leaderboard.submission import MAX_ERRORS_PER_FILE, Problem


def kind_of(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping", type(None): "null"}.get(type(v), type(v).__name__)


def key_path(path: str, key: str) -> str:
    """JSON path of a mapping member: plain names dotted, others quoted (sub["refused,none"])."""
    if key.isascii() and key.isidentifier():  # == [A-Za-z_][A-Za-z0-9_]*, without a regex call
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


class Checker:
    """Collects Problems for one file; each check returns whether the value passed."""

    def __init__(self, file: str):
        self.file = file
        self.errors: list[Problem] = []
        self._dropped = 0

    def err(self, field: str, problem: str) -> bool:
        if len(self.errors) < MAX_ERRORS_PER_FILE:
            self.errors.append(Problem(self.file, field, problem))
        else:
            self._dropped += 1
        return False

    def problems(self) -> list[Problem]:
        more = [Problem(self.file, "", f"... and {self._dropped} more problem(s)")] if self._dropped else []
        return self.errors + more

    def mapping(self, v, path, required=(), optional=(), strict=True) -> bool:
        if not isinstance(v, dict):
            return self.err(path, f"must be a mapping, got {kind_of(v)}")
        ok = True
        for k in v:
            if not isinstance(k, str):
                ok = self.err(path, f"key {k!r} must be a string")
            elif strict and k not in required and k not in optional:
                ok = self.err(key_path(path, k), "unknown field")
        for k in required:
            if k not in v:
                ok = self.err(key_path(path, k), "required field is missing")
        return ok

    def string(self, v, path, pattern: re.Pattern | None = None, null=False, what="", max_len=100_000) -> bool:
        if v is None and null:
            return True
        if not isinstance(v, str):
            return self.err(path, f"must be a string{' or null' if null else ''}, got {kind_of(v)}")
        if len(v) > max_len:
            return self.err(path, f"is {len(v):,} characters, over {max_len:,}")
        if pattern is not None and not pattern.fullmatch(v):
            return self.err(path, f"{v[:80]!r} is not {what or 'of the form ' + pattern.pattern}")
        return True

    def integer(self, v, path, lo: int | None = None, hi: int | None = None) -> bool:
        if isinstance(v, bool) or not isinstance(v, int):
            return self.err(path, f"must be an integer, got {kind_of(v)}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return self.err(path, f"{v} is outside [{lo}, {hi if hi is not None else 'inf'}]")
        return True

    def number(self, v, path) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return self.err(path, f"must be a number, got {kind_of(v)}")
        if not math.isfinite(float(v)):
            return self.err(path, "must be finite")
        return True

    def boolean(self, v, path) -> bool:
        return True if isinstance(v, bool) else self.err(path, f"must be true or false, got {kind_of(v)}")

    def choice(self, v, path, choices) -> bool:
        if isinstance(v, str) and v in choices:
            return True
        return self.err(path, f"must be one of {', '.join(choices)}, got {str(v)[:60]!r}")

    def items(self, v, path, lo: int, hi: int) -> bool:
        if not isinstance(v, list):
            return self.err(path, f"must be a list, got {kind_of(v)}")
        if not lo <= len(v) <= hi:
            return self.err(path, f"has {len(v):,} entries; allowed {lo:,} to {hi:,}")
        return True
