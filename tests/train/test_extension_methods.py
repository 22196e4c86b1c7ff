"""README "Adding a training method", followed from outside forgetbench: one registry entry makes a method
that `forgetbench train` offers, configures from its recipe settings and trains with, and that a
leaderboard entry may declare."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from forgetbench import cli, demo
from forgetbench.errors import UserError
from forgetbench.leaderboard.schema import check_metadata
from forgetbench.train.methods import COMMON, METHODS, SFT_KEYS, Method, register
from forgetbench.train import recipe as recipes
from support import REPO

ENTRY = REPO / "submissions" / "reference-smollm2-135m-lite-ifeval-sft"


@pytest.fixture
def own_registry():
    """What a test registers is gone after it."""
    before = dict(METHODS)
    yield
    METHODS.clear()
    METHODS.update(before)


@pytest.fixture
def noop(own_registry):
    """A method that fits nothing: it loads the base and hands it back, recording what it was given."""
    calls = []

    def fit(base_dir, recipe, work_dir, log, *, examples, scorer):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        calls.append({"recipe": recipe, "examples": examples, "n_docs": len(scorer.docs)})
        model = AutoModelForCausalLM.from_pretrained(base_dir)
        return model, AutoTokenizer.from_pretrained(base_dir), {"steps": 0, "examples": examples, "rounds": []}

    register(Method("noop", fit, {**COMMON, **SFT_KEYS, "knob": 3}, "expert responses, left unused",
                    expert_data=True))
    return calls


def _method_problems(method) -> list[str]:
    md = yaml.safe_load((ENTRY / "metadata.yaml").read_text())
    return [p.problem for p in check_metadata({**md, "method": method}) if p.field == "method"]


def test_a_registered_method_trains_through_the_cli(noop, tiny_model_dir, tmp_path, capsys):
    assert cli.main(["train", "--help"]) == 0
    assert "{sft,self-sft,onpolicy-sft,rl,noop}" in capsys.readouterr().out
    out = tmp_path / "run"
    code = cli.main(["train", "--method", "noop", "--base", str(tiny_model_dir), "--task", "lite_countdown",
                     "--set", "n_train=4", "--set", "knob=5", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    (call,) = noop
    assert call["recipe"]["knob"] == 5 and call["recipe"]["lr"] == SFT_KEYS["lr"]  # its defaults < --set
    assert len(call["examples"]) == call["n_docs"] == 4  # expert_data: the task's solver answers, 4 rows
    rec = json.loads((out / "forgetbench_train.json").read_text())
    assert rec["method"] == "noop" and rec["hyperparameters"]["knob"] == 5 and rec["steps"] == 0
    assert rec["training_data"].endswith("expert responses, left unused") and rec["warnings"] == []
    assert (out / "config.json").is_file() and recipes.load_recipe(out / "recipe.yaml", None) == rec["recipe"]
    with pytest.raises(UserError, match="knob"):  # its settings are its own
        recipes.load_recipe(None, "sft", ["knob=1"])


def test_a_registered_method_is_accepted_by_the_submission_schema(noop):
    assert _method_problems("noop") == [] and _method_problems("other") == []
    (problem,) = _method_problems("bogus")
    assert problem.startswith("must be one of sft, self-sft, onpolicy-sft, rl, noop, other,")


def test_unregistered_method_is_refused_everywhere(capsys):
    assert cli.main(["train", "--method", "noop"]) == 2 and "invalid choice: 'noop'" in capsys.readouterr().err
    assert _method_problems("noop") != [] and _method_problems("sft") == []
    with pytest.raises(ValueError, match="reserved"):
        register(Method("other", lambda *a, **k: None, COMMON, "nothing"))
    assert set(demo.DEMO_METHODS) <= set(METHODS)  # the demo trains registered methods


def test_the_leaderboard_schema_imports_no_training_library(tmp_path):
    code = ("import sys; import forgetbench.leaderboard.schema, forgetbench.leaderboard.validate; "
            "bad = [m for m in ('torch', 'transformers', 'trl', 'lm_eval', 'datasets') if m in sys.modules]; "
            "assert not bad, bad")
    env = {**os.environ, "FORGETBENCH_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)
