"""results.json read strictly: finite numbers, integers that fit an int64, no repeated keys, bounded
nesting; every refusal an Invalid(Problem(file, "", problem)) (forgetbench.leaderboard.submission).

The common file (no risky number token, no repeated key) is read by orjson; everything else by the
stdlib decoder with callbacks that name the problem, so both give the same values and messages.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from forgetbench.leaderboard.submission import MAX_DEPTH, MAX_INT_DIGITS, RESULTS_FILE, Invalid, Problem, levels, text_of


def _no_constant(token: str):
    raise ValueError(f"{token} is not allowed (numbers must be finite)")


def _finite_float(token: str) -> float:
    x = float(token)
    if not math.isfinite(x):
        raise ValueError(f"number {token[:30]} overflows a float")
    return x


def _small_int(token: str) -> int:
    if len(token.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"integer with {len(token)} digits is too large")
    return int(token)


def _unique_keys(pairs: list) -> dict:
    out = dict(pairs)  # built in C; only a short dict needs the slow look at which key repeats
    if len(out) == len(pairs):
        return out
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k[:60]!r}")
        out[k] = v
    return out


# Only a number token with 20 digits in a row (a huge integer or mantissa) or a 3-digit exponent can
# make _finite_float or _small_int refuse it; only those and a negative 19-digit integer (below -2**63
# orjson gives a float) can make orjson read a token differently from the stdlib decoder. A file
# without one parses to the same values without the per-number callbacks (~1 ms of a 90 KB
# results.json), and by orjson. The look is made outside strings, so the hex hashes every results.json
# holds ("...1e039...") do not count: with escaped backslashes and quotes taken out, every remaining
# '"' opens or closes a string (the file is parsed as JSON anyway, so a file where that is not so
# fails there); outside strings the only letters are those of true/false/null, so an 'e' followed by
# 3 digits is an exponent. Bytes methods only: a regular expression over the whole file cost 2-5 ms,
# more than the callbacks it saves.
_SHAPES = bytes(ord("d") if 48 <= c <= 57 else ord("e") if c in b"eE" else ord("s") if c in b"+-" else ord("x")
                for c in range(256))


_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"{}[]")


def _scan(data: bytes) -> tuple[bool, int, int]:
    """(a number token may need the careful callbacks, the nesting depth, the number of object members):
    all read outside strings, where every ':' separates a key from its value in valid JSON."""
    import numpy as np  # loaded already wherever files are validated

    if b"\\" in data:  # a file without a backslash (no escapes at all) needs neither pass over it
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(data.split(b'"')[0::2])
    shapes = outside.translate(_SHAPES)
    risky = b"d" * 20 in shapes or b"eddd" in shapes or b"esddd" in shapes or b"s" + b"d" * 19 in shapes
    # Outside strings every bracket opens or closes a container: the deepest running count is the
    # nesting depth, found before parsing and in C (~0.05 ms; submission._depth_ok's walk of a parsed
    # document, which YAML needs, ~0.7 ms).
    a = np.frombuffer(outside.translate(None, _NOT_BRACKETS), np.uint8)
    steps = 1 - 2 * ((a == ord("}")) | (a == ord("]"))).astype(np.int32)  # +1 opens, -1 closes
    return risky, int(np.cumsum(steps).max(initial=0)), outside.count(b":")


def _keys(obj: Any) -> int:
    """The number of keys of every mapping in a parsed document."""
    return sum(len(x) for level in levels(obj) for x in level if type(x) is dict)


def parse_json(data: bytes, name: str = RESULTS_FILE) -> Any:
    """The document in `data` (the file `name`), or Invalid naming why it is refused."""
    text = text_of(data, name)
    risky, depth, members = _scan(data)
    if depth > MAX_DEPTH:
        raise Invalid(Problem(name, "", f"nested deeper than {MAX_DEPTH} levels"))
    if not risky:
        # orjson gives the same values as the stdlib decoder for every token such a file holds (checked on
        # millions of random numbers and strings; tests/leaderboard/test_strictjson.py) and needs no hook:
        # parse_json of 1,000 benchmark entries took 0.72-0.75 ms a file against 1.0-1.2 ms (2-core AVX2
        # EPYC). It keeps the last of a repeated key, so the keys are counted against the ':' members; a
        # file it refuses or with a repeated key is read again below, which names the problem as before.
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
        else:
            if _keys(obj) == members:
                return obj
    numbers = {} if not risky else {"parse_float": _finite_float, "parse_int": _small_int}
    try:
        # Objects are built by the C decoder (a key given twice keeps its last value); fewer keys than
        # members means a repeated key: parsed again with the hook that names it (a pairs hook on every
        # object cost ~1 ms of a 90 KB results.json).
        obj = json.loads(text, parse_constant=_no_constant, **numbers)
        if _keys(obj) != members:
            obj = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys, **numbers)
    except json.JSONDecodeError as e:
        raise Invalid(Problem(name, "", f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}")) from None
    except ValueError as e:
        raise Invalid(Problem(name, "", f"invalid JSON: {e}")) from None
    except RecursionError:
        raise Invalid(Problem(name, "", f"nested deeper than {MAX_DEPTH} levels")) from None
    return obj
