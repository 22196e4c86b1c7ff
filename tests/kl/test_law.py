"""`forgetbench law`: fits of forgetting against KL over synthetic pairs stored through the real Store."""

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from forgetbench.kl import law, command as law_command
from forgetbench.errors import UserError
from forgetbench.records import Estimate
from forgetbench.store import Store
from support import PAIR_KL_DDL, put_law_pair

def _store(tmp_path, n=12, y=lambda x, rng: {"mmlu": 3 * x + rng.normal(0, 1), "gsm8k": x + rng.normal(0, 1)}):
    db = tmp_path / "fb.duckdb"
    rng = np.random.default_rng(7)
    xs = np.linspace(0.5, 10, n)
    with Store(db) as s:
        s.con.execute(PAIR_KL_DDL)
        for i, x in enumerate(xs):
            put_law_pair(s, i, float(x), y(x, rng), method="sft" if i % 2 else "rl")
    return db, xs


def test_known_slope_recovered_and_sub_rows_ignored(tmp_path):
    db, xs = _store(tmp_path)
    with Store(db, read_only=True) as s:
        points = law.load_points(s)
    assert len(points) == 12 and [p.x.value for p in points] == sorted(xs)
    assert {p.method for p in points} == {"sft", "rl"} and points[0].target == "countdown"
    assert set(points[0].probes) == {"gsm8k", "mmlu"}  # primary rows only, target excluded
    fs = {f.target: f for f in law.fits(points)}
    mean, mmlu, gsm = fs["mean_drop"], fs["mmlu"], fs["gsm8k"]
    assert [f.n for f in (mean, mmlu, gsm)] == [12, 12, 12]
    assert mean.slope == pytest.approx(2.0, abs=0.25)
    assert mmlu.slope == pytest.approx(3.0, abs=0.3) and gsm.slope == pytest.approx(1.0, abs=0.3)
    assert mean.r2_lin > 0.95 and mean.r2_quad >= mean.r2_lin
    # population r of y = 2x + e, e ~ N(0, 1/2) (mean of two unit-variance noises) on this x design
    true_r = 2 * xs.std() / math.sqrt(4 * xs.var() + 0.5)
    assert mean.r_lo < true_r < mean.r_hi and mean.r_lo > 0
    assert (mean.r_lo, mean.r_hi) == pytest.approx(law.fisher_ci(mean.r, 12))


def test_primary_metric_falls_back_to_the_registry(tmp_path):
    from forgetbench.tasks import registry

    metric = registry.get("mmlu").primary_metric
    with Store(tmp_path / "fb.duckdb") as s:
        put_law_pair(s, 0, 1.0, {"mmlu": 4.0, "not_a_task": 9.0}, metric=metric, report_json={})
        (p,) = law.load_points(s)
    assert p.probes == {"mmlu": Estimate(4.0, 2.0, 6.0)}  # the unknown task's row is not guessed


def test_fisher_ci_values_and_small_n():
    lo, hi = law.fisher_ci(0.5, 28)  # z = 0.5493, se = 0.2
    assert (lo, hi) == pytest.approx((0.1560, 0.7358), abs=1e-4)
    assert law.fisher_ci(0.9, 3) is None
    f = law.fit("t", [0, 1, 2], [0, 1, 3])
    assert f.r is not None and f.r_lo is None and f.r_hi is None and "n < 4" in f.note


def test_fisher_ci_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    x = rng.normal(size=9)
    y = x + rng.normal(size=9)
    f = law.fit("t", x, y)
    ci = stats.pearsonr(x, y).confidence_interval(0.95)
    assert (f.r_lo, f.r_hi) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_exact_quadratic_gives_quad_r2_one():
    x = np.arange(1.0, 8.0)
    f = law.fit("q", x, 0.5 * x**2 - 1.0 * x + 3.0)
    assert f.r2_quad == pytest.approx(1.0, abs=1e-12)
    assert f.quad == pytest.approx((0.5, -1.0, 3.0))
    assert f.r2_lin < 0.99


def test_degenerate_fits_are_none_with_a_reason():
    assert law.fit("t", [1, 1, 1, 1], [1, 2, 3, 4]).slope is None
    f = law.fit("t", [1, 2, 3, 4], [5, 5, 5, 5])
    assert f.slope == pytest.approx(0) and f.r is None and f.r2_lin is None and "equal" in f.note
    assert law.fit("t", [1, 2], [1, 2]).note.startswith("needs at least 3")


def test_fewer_than_three_pairs_is_a_user_error(tmp_path, capsys):
    db = tmp_path / "fb.duckdb"
    with Store(db) as s:
        s.con.execute(PAIR_KL_DDL)
        put_law_pair(s, 0, 1.0, {"mmlu": 1.0})
        put_law_pair(s, 1, 2.0, {"mmlu": 3.0})
        put_law_pair(s, 2, 3.0, {"mmlu": 5.0}, with_kl=False)  # a pair without KL does not count
    with pytest.raises(UserError, match="law needs at least 3 pairs with KL; found 2"):
        law_command.main(db, tmp_path / "p.png")
    assert "run01" in capsys.readouterr().out  # what exists is still shown
    assert not (tmp_path / "p.png").exists()


def test_store_without_kl_table_reports_zero(tmp_path):
    db = tmp_path / "old.duckdb"
    with Store(db) as s:
        s.con.execute("DROP TABLE IF EXISTS pair_kl")
        put_law_pair(s, 0, 1.0, {"mmlu": 1.0}, with_kl=False)
    with pytest.raises(UserError, match="found 0"):
        law_command.main(db, tmp_path / "p.png")


def test_main_writes_png_and_table(tmp_path, capsys):
    db, _ = _store(tmp_path)
    out = tmp_path / "law.png"
    assert law_command.main(db, out) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    text = capsys.readouterr().out
    assert "mean_drop" in text and "mmlu" in text and "R² quad" in text and str(out) in text


def test_main_svg_json_and_other_x(tmp_path, capsys):
    db, _ = _store(tmp_path)
    out = tmp_path / "law.svg"
    assert law_command.main(db, out, as_json=True, x="rev_tok") == 0
    assert ET.parse(out).getroot().tag.endswith("svg")
    d = json.loads(capsys.readouterr().out)
    assert d["x"] == "rev_tok" and d["n_pairs"] == 12 and d["plot"] == str(out)
    mean = d["fits"][0]
    assert mean["target"] == "mean_drop" and mean["slope"] == pytest.approx(2.0 * 50, rel=0.15)  # x = kl/50
    assert d["points"][0]["x"]["lo"] < d["points"][0]["x"]["value"]


def test_bad_arguments(tmp_path):
    db, _ = _store(tmp_path, n=4)
    with pytest.raises(UserError, match=r"\.png or \.svg"):
        law_command.main(db, tmp_path / "law.pdf")
    with pytest.raises(UserError, match="--x must be one of"):
        law_command.main(db, tmp_path / "law.png", x="kl")
    with pytest.raises(UserError, match="no store"):
        law_command.main(tmp_path / "missing.duckdb", tmp_path / "law.png")
