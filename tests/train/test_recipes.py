"""Every shipped recipe loads and says what it was tuned on (issue: reference baselines that learn, item 5)."""

from __future__ import annotations

import pytest

from forgetbench.train import recipe as recipes

SHIPPED = sorted(recipes.recipes_dir().glob("*/*.yaml"))


def test_recipes_are_shipped():
    assert {p.parent.name for p in SHIPPED} == {"cpu", "demo", "gpu"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_loads_and_states_what_it_was_tuned_on(path):
    r = recipes.load_recipe(path, None)
    assert r["method"] and r["task"] and r["base"]
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    tuned_on = [line for line in header if line.startswith("# Tuned on:")]
    assert len(tuned_on) == 1, f"{path}: one '# Tuned on:' line in the header comment"
    assert len(tuned_on[0].split()) > 4, f"{path}: the line must say what, not just be there"
