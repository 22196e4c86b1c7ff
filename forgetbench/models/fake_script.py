"""Read and check a fake-backend script (the format is documented in forgetbench/eval/fake.py).

Kept apart from forgetbench.eval.fake, which imports lm-eval: resolving a `fake:SCRIPT` model checks the
script here, so a malformed one is one clear line (file, field, problem) before anything is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from forgetbench.errors import UserError

_RULES = {"generate": "response", "choose": "continuation"}
_FIELDS = ("name", "generate", "default_response", "choose", "chat_template")


def _kind(v) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def check(script, where: str) -> dict:
    """`script` if it is a valid fake-backend script, else a UserError naming `where` and the field."""
    def bad(field: str, problem: str):
        raise UserError(f"{where}: fake-backend script: {field}: {problem}")

    if not isinstance(script, dict):
        bad("(file)", f"must be a JSON object, got {_kind(script)}")
    for k in script:
        if k not in _FIELDS:
            bad(k, f"unknown field (allowed: {', '.join(_FIELDS)})")
    for k in ("name", "default_response"):
        if k in script and not isinstance(script[k], str):
            bad(k, f"must be a string, got {_kind(script[k])}")
    if "chat_template" in script and not isinstance(script["chat_template"], bool):
        bad("chat_template", f"must be true or false, got {_kind(script['chat_template'])}")
    for k, out in _RULES.items():
        rules = script.get(k, [])
        if not isinstance(rules, list):
            bad(k, f"must be a list of rules, got {_kind(rules)}")
        for i, r in enumerate(rules):
            if not isinstance(r, dict):
                bad(f"{k}[{i}]", f"must be an object {{match, {out}}}, got {_kind(r)}")
            for f in ("match", out):
                if f not in r:
                    bad(f"{k}[{i}].{f}", "is missing")
                if not isinstance(r[f], str):
                    bad(f"{k}[{i}].{f}", f"must be a string, got {_kind(r[f])}")
            extra = sorted(set(r) - {"match", out})
            if extra:
                bad(f"{k}[{i}].{extra[0]}", f"unknown field (a rule has match and {out})")
    return script


def load(path: str | Path) -> dict:
    """The checked script in the JSON file `path`."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise UserError(f"{path}: cannot read the fake-backend script: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: fake-backend script is not valid UTF-8 (byte {e.start})") from e
    try:
        script = json.loads(text)
    except ValueError as e:
        raise UserError(f"{path}: fake-backend script is not valid JSON: {e}") from e
    return check(script, str(path))
