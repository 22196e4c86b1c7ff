"""`forgetbench toy parity`: the oracle label distribution, the RL gradient, the runs and fit, the CLI."""

import json

import numpy as np
import pytest

from forgetbench.toy import parity as tp
from forgetbench.cli import main as cli_main
from forgetbench.errors import UserError

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def tiny():
    return tp.run(steps=25, lrs=(0.003, 0.01), seeds=3, seed=0)  # 4 x 2 x 3 = 24 runs, ~1 s


def _kl(q, p):
    m = q > 0
    return float((q[m] * (np.log(q[m]) - np.log(p[m]))).sum())


def test_oracle_is_the_kl_closest_distribution_on_the_correct_set():
    rng = np.random.default_rng(0)
    y = np.arange(10)
    logp0 = np.log(rng.dirichlet(np.ones(10), size=10))
    oracle = tp.targets("sft-oracle", y, logp0)
    mask = tp.correct_mask(y)
    assert np.allclose(oracle.sum(1), 1) and np.all(oracle[~mask] == 0)
    for i in range(10):
        best = _kl(oracle[i], np.exp(logp0[i]))
        assert best == pytest.approx(-np.log(np.exp(logp0[i])[mask[i]].sum()))  # = -log pi0(correct set)
        others = [tp.targets(m, y, logp0)[i] for m in ("sft-single", "sft-uniform")]
        others += [q * mask[i] / (q * mask[i]).sum() for q in rng.dirichlet(np.ones(10), size=200)]
        for q in others:
            assert np.all(q[~mask[i]] == 0)  # every candidate is a correct-set distribution
            assert _kl(q, np.exp(logp0[i])) >= best - 1e-12


def test_single_class_has_the_right_parity():
    y = np.arange(10)
    q = tp.targets("sft-single", y, np.zeros((10, 10)))
    assert np.all(q.argmax(1) % 2 == y % 2) and np.all(q.max(1) == 1)


def test_splits_are_disjoint_and_the_base_has_room_to_learn():
    d = tp.load_data()
    sizes = [len(d.old_train[1]), len(d.old_test[1]), len(d.pre[1]), len(d.new_train[1]), len(d.new_test[1])]
    assert sum(sizes) == 1797 and sizes[0] == tp.N_OLD_TRAIN and sizes[-1] == tp.N_NEW_TEST
    rows = {x.tobytes() for x in d.new_test[0]}
    assert not rows & {x.tobytes() for x in d.new_train[0]}
    w0 = tp.pretrain(d, 0)
    assert tp.accuracy(w0, d.old_test, parity=False) > 0.9
    assert 0.6 < tp.accuracy(w0, d.new_test, parity=True) < 0.9


def test_rl_and_oracle_raise_new_task_accuracy_and_oracle_forgets_little(tiny):
    for m in ("rl", "sft-oracle"):
        assert tiny.means[m]["new_acc"] > tiny.base_new_acc + 0.03, m
    assert tiny.means["sft-oracle"]["drop"] < tiny.means["sft-single"]["drop"]
    assert tiny.means["sft-oracle"]["kl"] < tiny.means["sft-single"]["kl"]


def test_runs_fit_and_determinism(tiny):
    assert len(tiny.runs) == 24 and {r.method for r in tiny.runs} == set(tp.METHODS)
    assert all(r.kl >= 0 for r in tiny.runs)
    for r in tiny.runs:
        assert r.drop == pytest.approx(tiny.base_old_acc - r.old_acc)
    assert 0 <= tiny.fit.r2 <= 1 and -1 <= tiny.rank_corr <= 1
    kl, drop = np.array([r.kl for r in tiny.runs]), np.array([r.drop for r in tiny.runs])
    assert tiny.fit.r2 == pytest.approx(np.corrcoef(kl, drop)[0, 1] ** 2)
    again = tp.run(steps=25, lrs=(0.003, 0.01), seeds=3, seed=0)
    assert again == tiny
    other = tp.run(steps=25, lrs=(0.01,), seeds=1, seed=5)
    assert other.runs[-1] != next(r for r in tiny.runs if r.method == "rl" and r.lr == 0.01 and r.seed == 0)




def test_cli_json_and_figure(tmp_path, capsys):
    png = tmp_path / "fig" / "parity.png"
    assert cli_main(["toy", "parity", "--steps", "5", "--lrs", "0.01,0.003", "--seeds", "3", "--out", str(png),
                     "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and d["figure"] == str(png)
    assert len(d["runs"]) >= 20 and set(d["means"]) == set(tp.METHODS)
    assert {"method", "lr", "steps", "seed", "new_acc", "old_acc", "drop", "kl"} <= set(d["runs"][0])
    assert 0 <= d["fit"]["r2"] <= 1 and {"slope", "intercept"} <= set(d["fit"])
    assert cli_main(["toy", "parity", "--steps", "3", "--lrs", "0.01", "--seeds", "1", "--out",
                     str(tmp_path / "p.svg")]) == 0
    text = capsys.readouterr().out
    assert "sft-oracle" in text and "R² =" in text and b"<svg" in (tmp_path / "p.svg").read_bytes()[:2000]


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--lrs", "0"], ["--lrs", "0.1,2"], ["--lrs", "a,b"],
                                  ["--seeds", "0"], ["--seed", "-1"], ["--out", "p.jpg"]])
def test_bad_options_exit_2_with_one_line(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["toy", "parity", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err, err
    assert not (tmp_path / "toy_parity.png").exists()


@pytest.mark.parametrize("kwargs", [dict(steps=0), dict(lrs=()), dict(lrs=(1.5,)), dict(seeds=0)])
def test_bad_arguments_are_user_errors(kwargs):
    with pytest.raises(UserError):
        tp.run(**kwargs)
