"""`forgetbench demo`, the whole loop (train three methods -> eval three pairs -> export -> leaderboard) on
the conftest tiny random Llama with one-step recipes. The loop is the production path; only the
on-policy sampler is replaced, because a random model never writes a correct lite_ifeval answer."""

from __future__ import annotations

import json

import pytest
import yaml

from forgetbench import demo
from forgetbench.tasks import registry
from forgetbench.train import sft
from forgetbench.tasks.lite import instructions
from forgetbench.records import EvalSettings
from forgetbench.store import Store
from forgetbench.leaderboard.validate import INVALID, validate_entries
from forgetbench.train import data as train_data

TINY = ("n_train=4", "batch_size=4", "max_length=256", "max_steps=1", "samples_per_prompt=2",
        "num_generations=2", "max_completion_length=8")


@pytest.fixture
def expert_sampler(monkeypatch):
    """sample_responses stand-in: the expert answer for every training prompt of the demo target."""
    recipe, _ = demo.demo_recipe("onpolicy-sft", TINY)
    rows, scorer, _ = train_data.training_rows(registry.get(recipe["task"]), recipe, None, None)
    answers = {json.dumps(scorer.messages(d)): instructions.expert_response(r) for r, d in zip(rows, scorer.docs)}

    def sample(model, tok, prompts, *, n, **kw):
        return [[answers[json.dumps(m)]] * n for m in prompts]

    monkeypatch.setattr(sft, "sample_responses", sample)


@pytest.mark.slow
def test_demo_runs_the_whole_loop(tiny_model_dir, fb_home, expert_sampler, tmp_path, capsys):
    cfg = demo.DemoConfig(base=str(tiny_model_dir), out=tmp_path / "demo", overrides=TINY,
                          settings=EvalSettings(batch_size=16), kl_prompts=4, kl_samples=2)
    res = demo.run(cfg)

    assert [p.method for p in res.pairs] == ["sft", "onpolicy-sft", "rl"]
    for p in res.pairs:
        rec = json.loads((p.tuned / sft.RECIPE_FILE).read_text())
        # max_steps=1 is shared by the on-policy rounds, each of which still takes one step
        steps = 2 if p.method == "onpolicy-sft" else 1
        assert (rec["method"], rec["task"], rec["steps"]) == (p.method, "lite_ifeval", steps)
        assert p.report.target == "lite_ifeval" and p.report.kl and p.report.kl["n_seq"] == 8
    # one base: the three pairs share its content hash, and its runs were scored once
    with Store(res.db, read_only=True) as s:
        assert s.con.execute("SELECT count(*) FROM pairs").fetchone()[0] == 3
        base_runs = s.con.execute("SELECT count(*) FROM runs WHERE model_hash = ?",
                                  [res.pairs[0].report.base.content_hash]).fetchone()[0]
    assert base_runs == len(cfg.tasks) == len(demo.DEMO_TASKS)
    assert "lite_countdown" not in cfg.tasks  # the base solves none of it: nothing to forget there

    # entries: complete reference metadata (no TODO), valid, and on the built site
    reports = validate_entries([res.submissions])
    assert len(reports) == 3 and all(r.status != INVALID for r in reports), [r.errors for r in reports]
    assert all("reference" in r.badges for r in reports)
    md = yaml.safe_load((res.pairs[2].entry / "metadata.yaml").read_text())
    assert md["method"] == "rl" and md["reference"] is True and md["compute"].startswith("CPU")
    assert md["id"] == res.pairs[2].entry.name == "reference-smollm2-135m-lite-ifeval-rl"
    html = res.index.read_text()
    assert res.index.is_file() and all(p.entry.name in html for p in res.pairs)

    # a second demo reuses the three checkpoints (no training) and every stored run, and exports the pair
    # it just evaluated even when the store holds older pairs of the same models (e.g. before a task
    # version bump): simulated by a copy of each pair under another id
    with Store(res.db) as s:
        assert {r[0] for r in s.con.execute("SELECT pair_id FROM pairs").fetchall()} == {
            p.report.pair_id for p in res.pairs}
        s.con.execute("INSERT INTO pairs SELECT 'old' || pair_id[4:], * EXCLUDE (pair_id) FROM pairs")
    err = capsys.readouterr().err
    # every stage says its time, the time so far and (but the last) an estimate of the rest
    assert "[demo] train sft:" in err and "(2/8 stages," in err and "left (estimate)" in err
    again = demo.run(cfg)
    assert [p.tuned for p in again.pairs] == [p.tuned for p in res.pairs]
    assert "checkpoint cached" in capsys.readouterr().err


def test_demo_overrides_apply_only_where_the_method_has_the_setting():
    rl, _ = demo.demo_recipe("rl", TINY)
    sft_recipe, path = demo.demo_recipe("sft", TINY)
    assert rl["num_generations"] == 2 and "samples_per_prompt" not in rl
    assert sft_recipe["max_steps"] == 1 and "num_generations" not in sft_recipe
    assert path.name == "sft.yaml" and yaml.safe_load(path.read_text())["task"] == "lite_ifeval"
