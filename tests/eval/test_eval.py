"""`forgetbench eval` end to end on the fake backend: the production path (registry -> data ->
lm-eval -> store -> paired metrics -> report) with scripted models whose per-item outcomes we know."""

import json

import pytest

from forgetbench import cli
from forgetbench.eval import lmeval
from forgetbench.tasks import registry
from forgetbench.store import Store
from support import ALL_RIGHT, FIXTURES, ONE_RIGHT, fake_spec


def _eval(capsys, *args):
    code = cli.main(["eval", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def _task(report, name):
    return next(t for t in report["deltas"] if t["task"] == name)


def test_known_outcomes_give_hand_computed_drop_and_ci(tmp_path, capsys, fb_home):
    db = tmp_path / "s.duckdb"
    code, rep, err = _eval(capsys, fake_spec(tmp_path, ALL_RIGHT), fake_spec(tmp_path, ONE_RIGHT),
                           "--tasks", "gsm8k", "--data-dir", FIXTURES, "--db", db)
    assert code == 0, err
    t = _task(rep, "gsm8k")
    assert t["role"] == "probe" and t["n"] == 3
    assert t["base"]["value"] == pytest.approx(1.0) and t["tuned"]["value"] == pytest.approx(1 / 3)
    assert t["delta"]["value"] == pytest.approx(2 / 3)  # drop = base - tuned
    # per-item drops are (0, 1, 1): 2 items forgotten, none learned, of 3: Tango's score interval
    from forgetbench.stats import z_quantile
    from forgetbench.stats.score import tango

    lo, hi = tango(0, 2, 3, z_quantile(0.95))  # of tuned - base
    assert (t["delta"]["lo"], t["delta"]["hi"], t["delta"]["method"]) == (-hi, -lo, "tango")
    assert (t["forgotten"], t["learned"]) == (2, 0)
    assert (t["p_mcnemar"], t["p_holm"], t["verdict"]) == (0.5, 0.5, "n.s.")  # 2 vs 0 flips cannot reject
    assert rep["mean_drop"]["value"] == pytest.approx(2 / 3)


def test_same_model_gives_zero_gain_zero_drop_no_flips(tmp_path, capsys, fb_home):
    m = fake_spec(tmp_path, ALL_RIGHT)
    code, rep, err = _eval(capsys, m, m, "--suite", "core", "--data-dir", FIXTURES,
                           "--db", tmp_path / "s.duckdb")
    assert code == 0, err
    assert {t["task"] for t in rep["deltas"]} == {t.name for t in registry.suite("core")}
    for t in rep["deltas"]:
        # no flip: zero, with an interval that still says how much these few rows could hide
        assert t["delta"]["value"] == 0 and t["delta"]["lo"] < 0 < t["delta"]["hi"], t["task"]
        assert t["forgotten"] == 0 and t["learned"] == 0 and t["p_mcnemar"] == 1.0


def test_every_registered_task_renders_and_scores_fixture_rows(tmp_path, capsys, fb_home):
    m = fake_spec(tmp_path, ALL_RIGHT)
    db = tmp_path / "s.duckdb"
    tasks = registry.all_tasks()
    try:  # humaneval* run the fake model's code in the sandbox: only where namespaces work
        from forgetbench.tasks.scoring import sandbox

        sandbox.isolation()
        expected = set(tasks)
    except Exception:  # noqa: BLE001 - UserError: no sandbox here
        expected = {n for n, t in tasks.items() if not t.unsafe_code}
    names = ",".join(sorted(expected))
    code, rep, err = _eval(capsys, m, m, "--tasks", names, "--data-dir", FIXTURES, "--db", db, "--limit", "5",
                           "--confirm-run-unsafe-code")
    assert code == 0, err
    with Store(db, read_only=True) as s:
        rows = s.con.execute(
            "SELECT task, count(*), min(length(prompt)), min(items.score), max(items.score) FROM items JOIN runs USING (run_id)"
            " GROUP BY task").fetchall()
    seen = {r[0]: r[1:] for r in rows}
    assert set(seen) == expected
    for task, (n, min_prompt, lo, hi) in seen.items():
        assert n >= 1 and min_prompt > 0, task  # every item was rendered into a prompt
        assert 0 <= lo <= hi <= 1, task


def test_second_tuned_model_reuses_base_runs(tmp_path, capsys, fb_home):
    db = tmp_path / "s.duckdb"
    base = fake_spec(tmp_path, ALL_RIGHT)
    args = ("--tasks", "gsm8k,mmlu", "--data-dir", FIXTURES, "--db", db)
    assert _eval(capsys, base, fake_spec(tmp_path, ONE_RIGHT), *args)[0] == 0
    other = dict(ONE_RIGHT, name="other", default_response="No idea at all.")
    code, _, err = _eval(capsys, base, fake_spec(tmp_path, other), *args)
    assert code == 0
    assert "[base] gsm8k: cached" in err and "[base] mmlu: cached" in err
    assert "[tuned] gsm8k: scoring" in err
    with Store(db, read_only=True) as s:
        assert s.counts()["runs"] == 6  # 2 tasks x 3 distinct models
        prov = json.loads(s.con.execute("SELECT provenance FROM runs LIMIT 1").fetchone()[0])
    assert {"versions", "seed", "backend"} <= set(prov) and "lm_eval" in prov["versions"]


def test_interrupted_run_keeps_finished_tasks(tmp_path, capsys, fb_home, monkeypatch):
    db = tmp_path / "s.duckdb"
    base, tuned = fake_spec(tmp_path, ALL_RIGHT), fake_spec(tmp_path, ONE_RIGHT)
    real = lmeval.score_task

    def dies_on_mmlu(lm, model, spec, *a, **k):
        if spec.name == "mmlu":
            raise KeyboardInterrupt
        return real(lm, model, spec, *a, **k)

    monkeypatch.setattr(lmeval, "score_task", dies_on_mmlu)
    code, _, err = _eval(capsys, base, tuned, "--tasks", "gsm8k,mmlu", "--data-dir", FIXTURES, "--db", db)
    assert code == 130 and "interrupted" in err
    monkeypatch.setattr(lmeval, "score_task", real)
    code, rep, err = _eval(capsys, base, tuned, "--tasks", "gsm8k,mmlu", "--data-dir", FIXTURES, "--db", db)
    assert code == 0
    assert "[base] gsm8k: cached" in err and "[base] mmlu: scoring" in err


def test_target_role_turns_other_targets_into_probes(tmp_path, capsys, fb_home):
    m = fake_spec(tmp_path, ALL_RIGHT)
    code, rep, err = _eval(capsys, m, m, "--tasks", "ifeval,mmlu,gsm8k", "--target", "mmlu",
                           "--data-dir", FIXTURES, "--db", tmp_path / "s.duckdb")
    assert code == 0, err
    roles = {t["task"]: t["role"] for t in rep["deltas"]}
    assert roles == {"mmlu": "target", "ifeval": "probe", "gsm8k": "probe"}
