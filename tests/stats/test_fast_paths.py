"""The statistics' fast paths give exactly what the general ones give: paired._table_delta (a task's
numbers from its 2x2 tables) the intervals of stats.paired_interval / mean_interval and the flips counted
item by item; bootstrap._tails the order statistics of a full sort."""

import numpy as np
import pytest

from forgetbench import stats
from forgetbench.records import TaskSpec
from forgetbench.stats import paired


def _spec(hib: bool) -> TaskSpec:
    return TaskSpec(name="t", role="probe", suites=(), version="1", primary_metric="acc", higher_is_better=hib,
                    chance=0.0, cluster_key=None, strata_key=None, sources=(), yaml_path="")


def _item_level(spec, role, xb, xt):
    sign = 1.0 if (role == "target") == spec.higher_is_better else -1.0
    d = stats.paired_interval(xb, xt)
    right = (lambda x: x >= 0.5) if spec.higher_is_better else (lambda x: x < 0.5)
    forgotten, learned = int((right(xb) & ~right(xt)).sum()), int((~right(xb) & right(xt)).sum())
    return (stats.mean_interval(xb), stats.mean_interval(xt), d if sign > 0 else d.neg(), forgotten, learned)


@pytest.mark.parametrize("hib", [True, False])
@pytest.mark.parametrize("role", ["target", "probe"])
def test_table_delta_matches_item_level(hib, role):
    rng = np.random.default_rng(3)
    spec = _spec(hib)
    for n in (1, 2, 5, 20, 300):
        for p in (0.0, 0.1, 0.5, 1.0):
            xb = (rng.random(n) < p).astype(float)
            xt = np.where(rng.random(n) < 0.2, 1 - xb, xb)
            table = stats.binary_table(xb, xt)
            assert table is not None and sum(table) == n
            td = paired._table_delta(spec, role, "acc", [table], 1.0 if (role == "target") == hib else -1.0)
            base, tuned, delta, forgotten, learned = _item_level(spec, role, xb, xt)
            assert (td.base, td.tuned, td.delta) == tuple(paired._est(i) for i in (base, tuned, delta))
            assert (td.forgotten, td.learned, td.n) == (forgotten, learned, n)
            assert td.p_mcnemar == stats.mcnemar_exact(forgotten, learned)


def test_binary_table_refuses_other_scores():
    assert stats.binary_table(np.array([0.0, 0.5]), np.array([1.0, 1.0])) is None
    assert stats.binary_table(np.array([0.0, 1.0]), np.array([2.0, 1.0])) is None
    assert stats.binary_table(np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0, 1.0])) == (1, 1, 1, 1)


@pytest.mark.parametrize("hib", [True, False])
def test_stratified_tables_match_item_level(hib):
    rng = np.random.default_rng(5)
    spec = _spec(hib)
    for n in (2, 9, 40):
        xb = (rng.random(n) < 0.6).astype(float)
        xt = np.where(rng.random(n) < 0.3, 1 - xb, xb)
        strata = np.array(["safe", "harmful", "b"])[rng.integers(0, 3, n)]
        strata[:2] = ["safe", "harmful"]
        tables = paired._tables(xb, xt, strata)
        td = paired._table_delta(spec, "probe", "acc", tables, -1.0 if hib else 1.0)
        d = stats.paired_interval(xb, xt, strata=strata)
        assert td.delta == paired._est(d.neg() if hib else d)
        assert td.base == paired._est(stats.mean_interval(xb, strata=strata))
        assert td.tuned == paired._est(stats.mean_interval(xt, strata=strata))
        assert td.delta.method.startswith("mover(")


def test_tested_is_replace():
    """with_tests' constructor call keeps every field (it breaks if TaskDelta's fields change order)."""
    from dataclasses import fields, replace

    from forgetbench.records import Estimate, TaskDelta

    values = {f.name: f"v{i}" for i, f in enumerate(fields(TaskDelta))}
    values.update(base=Estimate(0.1, 0.0, 0.2), sub={"x": 1})
    d = TaskDelta(**values)
    assert paired._tested(d, 0.03, "dropped") == replace(d, p_holm=0.03, verdict="dropped")


def test_percentile_tails_equal_the_full_sort():
    """bootstrap._tails (sorting only the two tails) picks the same order statistics as a full sort,
    ties and sorted input included, or declines."""
    from forgetbench.stats import bootstrap as B

    rng = np.random.default_rng(2)
    used = 0
    for trial in range(300):
        n = int(rng.choice([2000, 2001, 9999, 10000]))
        x = [rng.normal(size=n), rng.integers(0, 3, n).astype(float), np.sort(rng.gamma(2, 1, n)), np.full(n, 1.5),
             rng.standard_cauchy(n)][trial % 5]
        for level in (0.95, 0.5, 0.99):
            qs = B._quantile_indexes(n, (1 - level) / 2)
            full = np.sort(x)
            want = (B._lerp(full[qs[0][1]], full[qs[0][2]], qs[0][0]), B._lerp(full[qs[1][1]], full[qs[1][2]], qs[1][0]))
            got = B._tails(x, qs)
            used += got is not None
            assert got in (None, want)
            assert B.percentile_ci(x, level) == want
    assert used > 800
