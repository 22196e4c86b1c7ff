"""Training recipes: the shipped ones (recipes/), a recipe file, the method's registry defaults and `--set`
overrides merged and typed (a wrong key or type is a one-line error naming it)."""

from __future__ import annotations

from pathlib import Path

import yaml

from forgetbench.errors import UserError
from forgetbench.paths import shipped
from forgetbench.train.methods import METHODS


def recipes_dir() -> Path:
    """The shipped recipes: the checkout's `recipes/`, or the wheel's copy."""
    found = shipped("recipes")
    if found is not None:
        return found
    raise UserError("cannot find the shipped training recipes (recipes/)")


def load_recipe(path: Path | None, method: str | None, overrides: list[str] = ()) -> dict:
    """Defaults of the method < the YAML file < `--set KEY=VALUE`; unknown keys and bad types fail."""
    raw = {}
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise UserError(f"--recipe {path}: {e}") from e
        if not isinstance(raw, dict):
            raise UserError(f"--recipe {path}: expected a mapping of settings")
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq:
            raise UserError(f"--set {item!r}: expected KEY=VALUE")
        raw[key.strip()] = yaml.safe_load(value)
    if method and raw.get("method") not in (None, method):
        raise UserError(f"--method {method} but the recipe says method: {raw['method']}")
    method = method or raw.get("method")
    if method not in METHODS:
        raise UserError(f"choose a method with --method ({', '.join(METHODS)}) or `method:` in the recipe")
    defaults = METHODS[method].defaults
    recipe = {"method": method, "task": raw.get("task"), "base": raw.get("base"), **defaults}
    for key, value in raw.items():
        if key in ("method", "task", "base"):
            continue
        if key not in defaults:
            raise UserError(f"recipe key {key!r} is not a setting of {method}; known: {', '.join(sorted(defaults))}")
        recipe[key] = _typed(key, value, defaults[key])
    return recipe


def _typed(key: str, value, default):
    """Check a setting against its default's type (None defaults: an optional integer)."""
    if isinstance(value, str) and isinstance(default, float):
        try:  # YAML 1.1 reads 1e-4 (no dot) as a string
            value = float(value)
        except ValueError:
            pass
    if default is None:
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int) and not isinstance(default, bool):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:  # bool, str
        ok = isinstance(value, type(default))
    if not ok:
        want = "a positive integer or null" if default is None else type(default).__name__
        raise UserError(f"recipe {key}: expected {want}, got {value!r}")
    return value
