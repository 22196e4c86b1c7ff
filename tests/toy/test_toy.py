"""`forgetbench toy mog`: hand-written KL gradients, seeded determinism, the paper's headline, the figure."""

import json

import numpy as np
import pytest

from forgetbench.toy import command as toy_command, mog as toy
from forgetbench.errors import UserError
from forgetbench.toy.mog import INITS, TARGET, Mixture


@pytest.fixture(scope="module")
def default():
    return toy.run()  # the default settings the CLI uses (~1 s)


def _theta(m: Mixture):
    return [np.log(np.array(m.weights)), np.array(m.means, float), np.log(np.array(m.stds))]


def _grid_kl(method, theta):
    pi = toy._mixture(theta)
    return toy.kl(TARGET, pi) if method == "forward-KL" else toy.kl(pi, TARGET)


@pytest.mark.parametrize("method", toy.METHODS)
def test_monte_carlo_gradient_matches_finite_differences_of_the_integrated_kl(method, monkeypatch):
    """The hand-written score-function gradients are unbiased estimates of the gradient of the very KL
    each update claims to descend (checked against central differences of the grid integral)."""
    monkeypatch.setattr(toy, "BATCH", 400_000)
    theta = _theta(Mixture((0.6, 0.4), (-2.0, 1.0), (1.3, 0.8)))
    mc = toy._grad(method, theta, np.random.default_rng(0))
    for i in range(3):
        for k in range(2):
            up, dn = [t.copy() for t in theta], [t.copy() for t in theta]
            up[i][k] += 1e-4
            dn[i][k] -= 1e-4
            fd = (_grid_kl(method, up) - _grid_kl(method, dn)) / 2e-4
            assert mc[i][k] == pytest.approx(fd, abs=0.02 + 0.03 * abs(fd)), (method, i, k)


def test_same_seed_same_result_other_seed_differs():
    a, b, c = toy.run(40, 0.05, 7), toy.run(40, 0.05, 7), toy.run(40, 0.05, 8)
    assert a == b
    assert a.run("bi-modal", "forward-KL").gain != c.run("bi-modal", "forward-KL").gain
    assert a.run("bi-modal", "reverse-KL").final != c.run("bi-modal", "reverse-KL").final


def test_densities_integrate_to_one_and_masses_match_the_grid(default):
    dens = [TARGET, *INITS.values(), *(r.final for r in default.runs)]
    for m in dens:
        p = np.exp(m.logpdf(toy.GRID))
        assert np.trapezoid(p, toy.GRID) == pytest.approx(1.0, abs=1e-4)
        assert m.mass(-np.inf, np.inf) == pytest.approx(1.0, abs=1e-12)
        lo, hi = toy.OLD_REGION
        inside = (toy.GRID >= lo) & (toy.GRID <= hi)
        assert np.trapezoid(p[inside], toy.GRID[inside]) == pytest.approx(m.mass(lo, hi), abs=2e-3)
    assert TARGET.mass(*toy.OLD_REGION) == pytest.approx(0.75 * 0.9545, abs=1e-3)
    assert toy.kl(TARGET, TARGET) == pytest.approx(0.0, abs=1e-9)
    # KL(N(-3,1) || p*) = log(4/3) up to the new mode's negligible overlap
    assert toy.kl(INITS["uni-modal"], TARGET) == pytest.approx(np.log(4 / 3), abs=1e-3)


def test_forward_kl_update_reduces_kl_target_to_policy(default):
    for init, pi0 in INITS.items():
        r = default.run(init, "forward-KL")
        assert r.fwd_kl < toy.kl(TARGET, pi0) - 0.5, init
    assert default.run("bi-modal", "forward-KL").fwd_kl < 0.05  # the bi-modal family contains p*


def test_reverse_kl_update_reduces_kl_policy_to_target(default):
    pi0 = INITS["bi-modal"]
    r = default.run("bi-modal", "reverse-KL")
    assert toy.kl(pi0, TARGET) > 1.0
    assert r.rev_kl < 0.05
    u = default.run("uni-modal", "reverse-KL")  # already at the local optimum on the old mode: stays there
    assert u.rev_kl == pytest.approx(toy.kl(INITS["uni-modal"], TARGET), abs=0.02)


def test_headline_rl_like_forgets_less_at_matched_gain(default):
    f, r = default.run("bi-modal", "forward-KL"), default.run("bi-modal", "reverse-KL")
    assert f.match_step is not None and r.match_step is not None
    assert f.match_drop > 0.10  # SFT-like: the old component stretches toward the new samples
    assert r.match_drop < 0.0  # RL-like: old mode keeps (here even gains) its mass
    assert f.peak_drop > r.peak_drop + 0.15
    # comparable gain: both learn the new task to the target's level by the end
    assert abs(f.gain[-1] - r.gain[-1]) < 0.04 and min(f.gain[-1], r.gain[-1]) > 0.2
    assert "RL-like forgets less" in " ".join(toy.verdict(default))
    # uni-modal: the classic picture (SFT-like covers both modes at a large drop, RL-like stays put)
    uf, ur = default.run("uni-modal", "forward-KL"), default.run("uni-modal", "reverse-KL")
    assert uf.drop[-1] > 0.4 and 0.05 < uf.gain[-1] < 0.15
    assert abs(ur.gain[-1]) < 0.02 and abs(ur.drop[-1]) < 0.03


def test_main_writes_png_and_svg_and_prints_table_or_json(tmp_path, capsys):
    png = tmp_path / "fig" / "mog.png"
    assert toy_command.mog(steps=30, lr=0.05, seed=1, out=png) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "reverse KL (RL-like)" in text and f"figure written to {png}" in text
    svg = tmp_path / "mog.svg"
    assert toy_command.mog(steps=30, out=svg, as_json=True) == 0
    assert b"<svg" in svg.read_bytes()[:2000]
    d = json.loads(capsys.readouterr().out)
    assert d["figure"] == str(svg) and d["steps"] == 30 and len(d["runs"]) == 4
    assert {r["method"] for r in d["runs"]} == set(toy.METHODS)
    assert d["runs"][0]["drop"][0] == 0.0 and len(d["runs"][0]["steps"]) == 31


@pytest.mark.parametrize("kwargs", [dict(steps=0), dict(lr=0.0), dict(lr=2.0), dict(out="mog.jpg")])
def test_bad_arguments_are_user_errors(kwargs, tmp_path):
    if "out" in kwargs:
        kwargs["out"] = tmp_path / kwargs["out"]
    with pytest.raises(UserError):
        toy_command.mog(**kwargs)
