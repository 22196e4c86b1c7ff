"""README "Adding a backend", followed from outside forgetbench: a backend registered once (here a wrapper
around the scripted fake model) is offered by `forgetbench eval --backend` and runs an evaluation end to
end, its capability flags deciding what the rest of the eval does with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forgetbench import cli
from forgetbench.errors import UserError
from forgetbench.eval import backends
from forgetbench.eval.backends import BACKENDS, Backend, register
from forgetbench.store import Store
from support import FIXTURES, REPO

# gsm8k fixture rows: 3 + 5 = 8, 6 * 4 = 24, 20 - 7 = 13 (as tests/test_eval.py)
ALL_RIGHT = {"name": "all-right", "default_response": "I do not know.",
             "generate": [{"match": "3 apples", "response": "The answer is 8."},
                          {"match": "6 eggs", "response": "The answer is 24."},
                          {"match": "20 dollars", "response": "The answer is 13."}]}
ONE_RIGHT = {"name": "one-right", "default_response": "I do not know.",
             "generate": [{"match": "3 apples", "response": "The answer is 8."}]}


@pytest.fixture
def own_registry():
    """What a test registers is gone after it."""
    before = dict(BACKENDS)
    yield
    BACKENDS.clear()
    BACKENDS.update(before)


def _fake(tmp_path, script) -> str:
    p = tmp_path / f"{script['name']}.json"
    p.write_text(json.dumps(script))
    return f"fake:{p}"


def _eval(capsys, *args):
    code = cli.main(["eval", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def test_a_registered_backend_is_offered_and_runs_an_eval(tmp_path, capsys, fb_home, own_registry):
    built = []

    def build(model, settings):  # the README's build(model, settings): heavy imports inside
        from forgetbench.eval.fake import FakeLM

        built.append((Path(model.path).stem, settings.backend))
        return FakeLM.from_file(model.path)

    register(Backend("toy", build, scripted=True))
    assert cli.main(["eval", "--help"]) == 0
    assert "{hf,vllm,fake,toy}" in capsys.readouterr().out

    base, tuned = _fake(tmp_path, ALL_RIGHT), _fake(tmp_path, ONE_RIGHT)
    args = ("--tasks", "gsm8k,mmlu", "--target", "mmlu", "--data-dir", FIXTURES)
    code, rep, err = _eval(capsys, base, tuned, *args, "--backend", "toy", "--db", tmp_path / "toy.duckdb")
    assert code == 0, err
    assert sorted(built) == [("all-right", "toy"), ("one-right", "toy")]  # each model built once, by the registry
    assert rep["settings"]["backend"] == "toy"
    assert rep["settings"]["kl_skipped"] == "the toy backend has no token distributions"  # scripted: no KL
    with Store(tmp_path / "toy.duckdb", read_only=True) as s:
        provs = [json.loads(p) for (p,) in s.con.execute("SELECT provenance FROM runs").fetchall()]
    assert len(provs) == 4 and {p["backend"] for p in provs} == {"toy"}  # its own cache key
    # the same scripts on the built-in fake backend: the same numbers
    code, ref, err = _eval(capsys, base, tuned, *args, "--backend", "fake", "--db", tmp_path / "fake.duckdb")
    assert code == 0, err
    keys = ("task", "role", "n", "delta", "forgotten", "learned")
    assert [{k: t[k] for k in keys} for t in rep["deltas"]] == [{k: t[k] for k in keys} for t in ref["deltas"]]
    assert next(t for t in rep["deltas"] if t["task"] == "gsm8k")["delta"]["value"] == pytest.approx(2 / 3)


def test_a_real_backend_never_runs_fake_scripts_and_unknown_names_are_refused(tmp_path, capsys, fb_home,
                                                                                own_registry):
    register(Backend("toy-real", lambda model, settings: pytest.fail("fake scripts must not reach it")))
    with pytest.raises(ValueError, match="already registered"):
        register(Backend("toy-real", lambda model, settings: None))
    m = _fake(tmp_path, ALL_RIGHT)
    code, rep, err = _eval(capsys, m, m, "--tasks", "gsm8k", "--data-dir", FIXTURES, "--backend", "toy-real",
                           "--db", tmp_path / "s.duckdb")
    assert code == 0, err
    assert rep["settings"]["backend"] == "fake"  # fake scripts run on the scripted backend, as with hf
    with pytest.raises(UserError, match="unknown backend 'nope'; expected one of hf, vllm, fake, toy-real"):
        backends.backend("nope")
    assert backends.backend("toy-real").kl_sampler == "hf" and backends.backend("vllm").kl_sampler == "vllm"


def test_unregistered_backend_is_a_usage_error(tmp_path, capsys, fb_home):
    code = cli.main(["eval", "a", "b", "--backend", "toy"])
    assert code == 2 and "invalid choice: 'toy'" in capsys.readouterr().err


def test_help_imports_no_model_library(tmp_path):
    code = ("import sys; from forgetbench import cli; cli.main(['--help']); cli.main(['eval', '--help']); "
            "bad = [m for m in ('torch', 'transformers', 'lm_eval', 'vllm', 'trl') if m in sys.modules]; "
            "assert not bad, bad")
    env = {**os.environ, "FORGETBENCH_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL)
