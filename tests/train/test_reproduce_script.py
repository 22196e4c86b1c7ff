"""benchmarks/reproduce.py without a model: its run table, the matched-gain pairing, the direct (item by item)
forgetting comparison, the verdict, and bad --runs refused with exit code 2 before any model work."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from forgetbench import stats
from forgetbench.errors import UserError
from forgetbench.records import Estimate, ItemResult, TaskRun, TaskSpec
from forgetbench.tasks import registry
from forgetbench.train.methods import METHODS
from forgetbench.train.recipe import load_recipe, recipes_dir
from support import ALL_RIGHT, FIXTURES, ONE_RIGHT, REPO, fake_spec


def _load():
    # registered in sys.modules before it runs: its dataclasses look their module up there
    spec = importlib.util.spec_from_file_location("reproduce_script", REPO / "benchmarks" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


repro = _load()


def spec(name: str, higher_is_better: bool = True) -> TaskSpec:
    return TaskSpec(name=name, role="probe", suites=(), version="1", primary_metric="acc",
                    higher_is_better=higher_is_better, chance=0.0, cluster_key=None, strata_key=None,
                    sources=(), yaml_path="")


def run(task: str, scores, shuffle: int | None = None) -> TaskRun:
    items = [ItemResult(doc_id=i, doc_hash=f"h{i:03d}", prompt="p", response="r", score=float(s), metrics={})
             for i, s in enumerate(scores)]
    if shuffle is not None:  # stored order must not matter: items pair by doc_hash
        random.Random(shuffle).shuffle(items)
    return TaskRun(model_hash="m", task=task, task_version="1", data_hash="d", gen_key="g", gen_settings={},
                   items=tuple(items), provenance={})


def result(name: str, method: str, gain: tuple[float, float, float], probe_runs=None, drop=None) -> object:
    return repro.Result(name, method, "1 steps", Estimate(*gain), drop, None, probe_runs or {}, 1.0, 0.0,
                        False, False)


# ---- the run table


def test_every_run_names_a_registered_method_an_existing_recipe_and_known_keys():
    assert list(repro.RUNS)[:3] == ["sft-1", "sft-2", "sft-4"]  # cheap first
    methods = {m for m, _, _ in repro.RUNS.values()}
    assert "sft" in methods and methods & set(repro.ONPOLICY)
    for name, (method, file, overrides) in repro.RUNS.items():
        assert method in METHODS, name
        path = recipes_dir() / file
        assert path.is_file(), name
        for o in overrides:
            assert o.partition("=")[0] in METHODS[method].defaults, (name, o)
        recipe = load_recipe(path, method, list(overrides))
        assert recipe["task"] == "lite_ifeval", name  # every run trains on the one target


def test_plan_applies_the_overrides_and_sft_budgets_bind():
    planned = {p.name: p for p in repro.plan(list(repro.RUNS), "float32")}
    assert [planned[f"sft-{n}"].recipe["max_steps"] for n in (1, 2, 4)] == [1, 2, 4]
    for n in (1, 2, 4):  # max_steps binds: the epoch has at least that many batches
        r = planned[f"sft-{n}"].recipe
        assert r["n_train"] * r["epochs"] // r["batch_size"] >= r["max_steps"]
    assert [planned[f"onpolicy-sft-{n}r"].recipe["epochs"] for n in (1, 2, 3)] == [1, 2, 3]
    assert planned["onpolicy-sft-3r"].recipe["max_steps"] is None
    assert planned["rl-10"].recipe["max_steps"] == 10 and planned["rl-10"].recipe["num_generations"] == 8
    assert all(p.recipe["dtype"] == "float32" for p in planned.values())


def test_unknown_run_or_method_is_one_line_and_exit_2(monkeypatch, capsys):
    def no_model_work(*a, **k):
        raise AssertionError("model work before the input was checked")

    monkeypatch.setattr(repro, "run_one", no_model_work)
    assert repro.main(["--runs", "sft-1,sft-99", "--out", "/nonexistent/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sft-99" in err and "sft-1" in err.split("known:")[1]
    assert repro.main(["--runs", " , "]) == 2
    monkeypatch.setitem(repro.RUNS, "odd", ("no-such-method", "demo/sft.yaml", ()))
    with pytest.raises(UserError, match="unknown method 'no-such-method'"):
        repro.plan(["sft-1", "odd"])
    assert repro.main(["--runs", "odd"]) == 2
    monkeypatch.setitem(repro.RUNS, "odd", ("sft", "demo/sft.yaml", ("no_such_key=1",)))
    assert repro.main(["--runs", "odd"]) == 2
    assert "no_such_key" in capsys.readouterr().err


def test_a_checkpoint_of_another_recipe_in_out_is_refused_not_reused(monkeypatch, tmp_path: Path, capsys):
    import json

    (p,) = repro.plan(["rl-5"], "float32")
    folder = tmp_path / "runs" / "rl-5"
    folder.mkdir(parents=True)
    # what `forgetbench train --recipe recipes/cpu/rl.yaml --set max_steps=5 --out OUT/runs/rl-5` records
    record = {"recipe": {**p.recipe, "base": repro.BASE}, "steps": 5, "wall_seconds": 1.0}
    (folder / "forgetbench_train.json").write_text(json.dumps(record))
    assert repro.stale([p], tmp_path) == []
    record["recipe"]["lr"] = 1e-5
    (folder / "forgetbench_train.json").write_text(json.dumps(record))
    assert repro.stale([p], tmp_path) == ["rl-5"]
    monkeypatch.setattr(repro, "run_one", lambda *a: pytest.fail("model work despite a stale checkpoint"))
    assert repro.main(["--runs", "rl-5", "--out", str(tmp_path), "--dtype", "float32"]) == 2
    assert "rl-5 hold(s) a checkpoint of another recipe" in capsys.readouterr().err


# ---- matched gain


def test_forgets_less_is_the_paired_difference_of_the_two_tuned_models_on_the_probe_items():
    rng = np.random.default_rng(0)
    sft_a = (rng.random(96) < 0.5).astype(float)
    onp_a = sft_a.copy()
    onp_a[np.flatnonzero(sft_a == 0)[:20]] = 1.0  # the on-policy model keeps 20 items SFT forgot
    sft_b = (rng.random(60) < 0.7).astype(float)
    onp_b = sft_b.copy()
    onp_b[np.flatnonzero(sft_b == 1)[:3]] = 0.0  # and loses 3 on the other probe
    specs = {"a": spec("a"), "b": spec("b")}
    got = repro.forgets_less(specs, {"a": run("a", sft_a), "b": run("b", sft_b)},
                             {"a": run("a", onp_a, shuffle=1), "b": run("b", onp_b, shuffle=2)})
    want = stats.mean_of([stats.paired_interval(sft_a, onp_a), stats.paired_interval(sft_b, onp_b)])
    assert got.value == pytest.approx((20 / 96 - 3 / 60) / 2)
    assert (got.value, got.lo, got.hi) == pytest.approx((want.value, want.lo, want.hi))
    assert got.lo > 0 and got.method == "mover"
    # lower is better on a probe: a higher score is more forgetting, so the sign flips
    flipped = repro.forgets_less({"a": spec("a", higher_is_better=False)}, {"a": run("a", sft_a)},
                                 {"a": run("a", onp_a)})
    assert flipped.value == pytest.approx(-20 / 96) and flipped.hi < 0
    with pytest.raises(ValueError, match="probe sets differ"):
        repro.forgets_less(specs, {"a": run("a", sft_a)}, {"b": run("b", sft_b)})


def test_matched_pairs_are_sft_vs_onpolicy_with_overlapping_gain_intervals():
    probes = {"a": run("a", [1, 0, 1, 1, 0, 1])}
    rs = [result("sft-1", "sft", (0.05, -0.05, 0.15), probes),
          result("sft-4", "sft", (0.40, 0.25, 0.55), probes),
          result("onpolicy-sft-1r", "onpolicy-sft", (0.10, 0.02, 0.20), probes),
          result("rl-10", "rl", (0.35, 0.20, 0.50), probes),
          result("self-sft", "self-sft", (0.70, 0.60, 0.80), probes)]
    got = [(m.sft.name, m.onpolicy.name) for m in repro.matched_pairs(rs, {"a": spec("a")})]
    assert got == [("sft-1", "onpolicy-sft-1r"), ("sft-4", "rl-10")]
    same = [rs[0], result("sft-2", "sft", (0.10, 0.0, 0.20), probes), rs[2],
            result("onpolicy-sft-2r", "onpolicy-sft", (0.12, 0.02, 0.22), probes)]
    # SFT runs are never matched with each other, nor on-policy runs with each other
    assert [(m.sft.name, m.onpolicy.name) for m in repro.matched_pairs(same, {"a": spec("a")})] == [
        ("sft-1", "onpolicy-sft-1r"), ("sft-1", "onpolicy-sft-2r"), ("sft-2", "onpolicy-sft-1r"),
        ("sft-2", "onpolicy-sft-2r")]
    assert repro.overlap(Estimate(0, 0, 0.1), Estimate(0.1, 0.1, 0.2))  # touching counts


def test_matched_line_and_verdict_count_the_direction_of_each_interval():
    a, b = result("sft-2", "sft", (0.2, 0.1, 0.3)), result("rl-10", "rl", (0.15, 0.05, 0.25))
    pairs = [repro.Matched(a, b, Estimate(0.03, 0.01, 0.05)), repro.Matched(a, b, Estimate(-0.04, -0.07, -0.01)),
             repro.Matched(a, b, Estimate(0.02, -0.01, 0.05)), repro.Matched(a, b, Estimate(0.05, 0.02, 0.08))]
    v = repro.verdict(pairs)
    assert "4 matched pairs" in v and "excluding 0) in 2," in v and "more in 1," in v and "inconclusive in 1" in v
    assert "no matched-gain comparison" in repro.verdict([])
    line = repro.matched_line(pairs[2])
    assert line.startswith("sft-2 (gain +20.0 [+10.0, +30.0]) vs rl-10 (gain +15.0 [+5.0, +25.0])")
    assert "forgets +2.0 [-1.0, +5.0] points less (interval includes 0)" in line
    assert "(interval excludes 0)" in repro.matched_line(pairs[1])


def test_fit_line_and_table():
    rs = [repro.Result(f"r{i}", "sft", f"{i} steps", Estimate(0.1, 0, 0.2), Estimate(d, d - 0.02, d + 0.02),
                       Estimate(k, k - 0.1, k + 0.1), {}, 10.0 * i, 0.0, False, True)
          for i, (k, d) in enumerate([(1.0, 0.01), (2.0, 0.03), (4.0, 0.07)])]
    assert "= +2 x KL" in repro.fit_line(rs) and "R² 1.000" in repro.fit_line(rs)
    assert "not enough runs" in repro.fit_line(rs[:1])
    t = repro.table(rs).splitlines()
    assert len(t) == 5 and t[2].split()[:4] == ["r0", "sft", "0", "steps"] and t[4].split()[-2:] == ["20", "0"]


def test_main_writes_the_results_file(monkeypatch, tmp_path: Path, capsys):
    """The whole report path with run_one replaced (no model, no store): table, matched line, verdict, files."""
    sft = run("lite_mc", [1] * 40 + [0] * 56)
    onp = run("lite_mc", [1] * 60 + [0] * 36)
    fake = {"sft-2": result("sft-2", "sft", (0.2, 0.1, 0.3), {"lite_mc": sft}, Estimate(0.2, 0.1, 0.3)),
            "rl-10": result("rl-10", "rl", (0.15, 0.05, 0.25), {"lite_mc": onp}, Estimate(0.0, -0.05, 0.05))}
    monkeypatch.setattr(repro, "run_one", lambda p, out, db: fake[p.name])
    monkeypatch.setattr(repro, "law_text", lambda db, out: "law: skipped in the test")
    assert repro.main(["--runs", "sft-2,rl-10", "--out", str(tmp_path / "o"), "--results", str(tmp_path / "r.md")]) == 0
    md = (tmp_path / "r.md").read_text()
    assert md == (tmp_path / "o" / "reproduce.md").read_text()
    assert "on-policy forgets +20.8 [" in md and "1 matched pairs; the on-policy run forgets less" in md
    assert "--runs sft-2,rl-10" in md and "CPU:" in md and "git commit:" in md and "law: skipped" in md
    assert "cached: training none; evaluation none" in md


def test_probe_items_come_from_the_store_and_compare_two_tuned_models(tmp_path: Path, fb_home):
    """Two tuned (scripted) models against one base on a probe: the items read back from the store give the
    direct comparison, equal to the difference of the two pairs' drops; an evaluation stored already adds
    no rows (what marks it cached)."""
    from forgetbench.eval.run import EvalRequest, evaluate_pair

    db = tmp_path / "s.duckdb"
    base = fake_spec(tmp_path, ALL_RIGHT)
    forgets = fake_spec(tmp_path, ONE_RIGHT)  # 2 of the 3 gsm8k fixture rows forgotten
    keeps = fake_spec(tmp_path, {**ALL_RIGHT, "name": "all-right-too"})  # none forgotten

    def pair(tuned):
        return evaluate_pair(EvalRequest(base=base, tuned=tuned, tasks=("gsm8k",), data_dir=FIXTURES, db=db))

    assert repro.computed_rows(db) == ()
    sft = pair(forgets)
    before = repro.computed_rows(db)
    onp = pair(keeps)
    assert repro.computed_rows(db) != before
    before = repro.computed_rows(db)
    pair(keeps)
    assert repro.computed_rows(db) == before
    runs_sft, runs_onp = repro.probe_runs(db, sft), repro.probe_runs(db, onp)
    assert list(runs_sft) == ["gsm8k"] and sorted(i.score for i in runs_sft["gsm8k"].items) == [0, 0, 1]
    assert runs_onp["gsm8k"].model_hash == onp.tuned.content_hash != sft.tuned.content_hash
    less = repro.forgets_less({"gsm8k": registry.get("gsm8k")}, runs_sft, runs_onp)
    assert less.value == pytest.approx(sft.mean_drop.value - onp.mean_drop.value) == pytest.approx(2 / 3)
    # --export: each run's pair becomes a reference entry labelled by its budget; the maintainers' list
    # lines name it with the sha256 of the results.json written
    import hashlib

    import yaml

    runs = [repro.Result(n, m, b, sft.deltas[0].delta, sft.mean_drop, None, {}, 1.0, 0.0, False, False, "float32",
                         r.pair_id, {"machine": {"cpu": "CPU: test"}})
            for n, m, b, r in (("sft-2", "sft", "2 steps", sft), ("rl-10", "rl", "10 steps", onp))]
    lines = repro.export(runs, db, tmp_path / "subs")
    entry = tmp_path / "subs" / "reference-smollm2-135m-lite-ifeval-repro-rl-10"
    meta = yaml.safe_load((entry / "metadata.yaml").read_text())
    assert meta["reference"] is True and "10 steps" in meta["title"] and "CPU: test" in meta["notes"]
    assert meta["tuned"]["content_hash"] == onp.tuned.content_hash
    assert lines[2:] == [f"- id: {entry.name}",
                         f"  sha256: {hashlib.sha256((entry / 'results.json').read_bytes()).hexdigest()}"]
