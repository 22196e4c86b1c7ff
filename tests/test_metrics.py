"""Paired statistics: hand-computed values, CI endpoints, clusters, strata, coverage."""

import numpy as np
import pytest

from forgetbench import bootstrap, metrics
from forgetbench.errors import UserError
from forgetbench.metrics import mean_drop, paired_bootstrap, percentile_ci, task_delta, task_delta_with_reps
from forgetbench.records import Estimate, ItemResult, ModelRef, TaskRun, TaskSpec


def spec(name="t", role="probe", hib=True, strata_key=None, cluster_key=None, extra=()):
    return TaskSpec(
        name=name, role=role, suites=("core",), version="1", primary_metric="acc", higher_is_better=hib,
        chance=0.0, cluster_key=cluster_key, strata_key=strata_key, sources=(), yaml_path="x.yaml",
        extra_metrics=tuple(extra),
    )


def run(scores, task="t", clusters=None, strata=None, metrics_=None, hashes=None):
    items = []
    for i, s in enumerate(scores):
        m = {"acc,none": float(s)}
        if metrics_:
            m.update(metrics_[i])
        items.append(ItemResult(
            doc_id=i, doc_hash=(hashes[i] if hashes else f"h{i}"), prompt="p", response="r", score=float(s),
            metrics=m, cluster=clusters[i] if clusters else None, stratum=strata[i] if strata else None,
        ))
    return TaskRun("m", task, "1", "d", "g", {}, tuple(items), {})


def test_identical_runs_give_exact_zero():
    s = [1, 0, 1, 1, 0, 0.5]
    d = task_delta(spec(), "probe", run(s), run(s), n_boot=2000)
    assert d.delta == Estimate(0.0, 0.0, 0.0)
    assert d.forgotten == d.learned == 0
    assert d.base.value == d.tuned.value == pytest.approx(3.5 / 6)


def test_known_pair_target_and_probe():
    b, t = run([1, 1, 0, 0]), run([1, 0, 1, 1])
    g = task_delta(spec(role="target"), "target", b, t, n_boot=2000)
    assert g.delta.value == pytest.approx(0.25)
    assert (g.base.value, g.tuned.value) == (0.5, 0.75)
    assert (g.forgotten, g.learned, g.n) == (1, 2, 4)
    p = task_delta(spec(), "probe", b, t, n_boot=2000)
    assert p.delta.value == pytest.approx(-0.25)
    assert (p.forgotten, p.learned) == (1, 2)
    assert p.delta.lo <= -0.25 <= p.delta.hi


def test_lower_is_better_flips_sign_and_rightness():
    b, t = run([0.0, 0.0, 1.0]), run([1.0, 0.0, 1.0])  # e.g. error rate: tuned got worse
    p = task_delta(spec(hib=False), "probe", b, t, n_boot=500)
    assert p.delta.value == pytest.approx(1 / 3)  # a drop for a probe
    g = task_delta(spec(hib=False, role="target"), "target", b, t, n_boot=500)
    assert g.delta.value == pytest.approx(-1 / 3)
    assert (p.forgotten, p.learned) == (1, 0)  # item 0: right (low) -> wrong (high)


def test_ci_of_two_differences_by_hand():
    # differences a=0.5, b=0.75: resampled means a (p=1/4), (a+b)/2 (1/2), b (1/4)
    b, t = run([0.0, 0.25]), run([0.5, 1.0])
    d = task_delta(spec(role="target"), "target", b, t, n_boot=20000)
    assert d.delta.value == pytest.approx(0.625)
    assert (d.delta.lo, d.delta.hi) == (0.5, 0.75)


def test_percentile_ci_pure():
    assert percentile_ci(np.arange(101.0)) == pytest.approx((2.5, 97.5))
    assert percentile_ci(np.array([4.0, 0, 2, 1, 3])) == pytest.approx((0.1, 3.9))  # 0.025 * 4 = 0.1
    assert percentile_ci(np.array([3.0] * 7)) == (3.0, 3.0)


def test_constant_differences_give_degenerate_ci():
    rng = np.random.default_rng(3)
    base = rng.random(300)
    bt = paired_bootstrap(base, base + 0.125, n_boot=3000)
    assert bt.diff == pytest.approx(0.125)
    assert bt.diff_reps.min() == pytest.approx(0.125, abs=1e-12)
    assert bt.diff_reps.max() == pytest.approx(0.125, abs=1e-12)
    assert bt.base_reps.max() - bt.base_reps.min() > 0.01  # base itself still varies


def test_cluster_ci_endpoints_are_cluster_values():
    # two clusters (sizes 3 and 5), each with identical differences 0.0 and 1.0
    b = run([0] * 8, clusters=["a"] * 3 + ["b"] * 5)
    t = run([0, 0, 0, 1, 1, 1, 1, 1], clusters=["a"] * 3 + ["b"] * 5)
    d = task_delta(spec(role="target", cluster_key="c"), "target", b, t, n_boot=20000)
    assert d.delta.value == pytest.approx(5 / 8)
    assert (d.delta.lo, d.delta.hi) == (0.0, 1.0)


def test_clusters_widen_ci_under_within_cluster_correlation():
    rng = np.random.default_rng(0)
    n_cl, size = 60, 10
    cl_diff = rng.choice([-1.0, 0.0, 1.0], size=n_cl)
    diffs = np.repeat(cl_diff, size)
    base = np.where(diffs < 0, 1.0, 0.0)
    tuned = base + diffs
    clusters = np.repeat(np.arange(n_cl), size)
    w_item = np.ptp(percentile_ci(paired_bootstrap(base, tuned, n_boot=4000).diff_reps))
    w_cl = np.ptp(percentile_ci(paired_bootstrap(base, tuned, clusters=clusters, n_boot=4000).diff_reps))
    assert w_cl > 2.0 * w_item  # ~sqrt(10) in theory


def test_strata_average_stratum_means_not_pooled():
    strata = ["harmful"] * 10 + ["safe"] * 30
    b = run([1] * 10 + [1] * 15 + [0] * 15, strata=strata)  # refusal 1.0, compliance 0.5
    t = run([1] * 5 + [0] * 5 + [1] * 30, strata=strata)  # refusal 0.5, compliance 1.0
    d = task_delta(spec(strata_key="kind"), "probe", b, t, n_boot=2000)
    assert d.base.value == pytest.approx(0.75)  # pooled would be 25/40
    assert d.tuned.value == pytest.approx(0.75)  # pooled would be 35/40
    assert d.delta.value == pytest.approx(0.0)
    assert set(d.sub) == {"kind=harmful", "kind=safe"}
    assert d.sub["kind=harmful"].delta.value == pytest.approx(0.5) and d.sub["kind=harmful"].n == 10
    assert d.sub["kind=safe"].delta.value == pytest.approx(-0.5) and d.sub["kind=safe"].forgotten == 0
    assert d.sub["kind=safe"].learned == 15
    # stratified resampling keeps stratum sizes: harmful never changes for base (all 1)
    assert d.sub["kind=harmful"].base == Estimate(1.0, 1.0, 1.0)


def test_extra_metric_uses_instruction_counts_for_micro_mean():
    key = "inst_level_loose_acc,none"
    mb = [{key: 1.0, key + "__n": 1}, {key: 0.0, key + "__n": 3}]
    mt = [{key: 1.0, key + "__n": 1}, {key: 1 / 3, key + "__n": 3}]
    b, t = run([1, 0], metrics_=mb), run([1, 0], metrics_=mt)
    d = task_delta(spec(extra=["inst_level_loose_acc", "not_produced"]), "probe", b, t, n_boot=1000)
    sub = d.sub["inst_level_loose_acc"]
    assert sub.metric == key
    assert sub.base.value == pytest.approx(0.25)  # (1*1 + 3*0) / 4, not the per-prompt mean 0.5
    assert sub.tuned.value == pytest.approx(0.5)
    assert sub.delta.value == pytest.approx(-0.25)
    assert "not_produced" not in d.sub


def test_mismatched_doc_hashes_raise():
    b = run([1, 0, 1])
    t = run([1, 0, 1], hashes=["h0", "h1", "zz"])
    with pytest.raises(UserError, match=r"task t: mismatched inputs: 1 base item"):
        task_delta(spec(), "probe", b, t)


def test_pairs_by_hash_not_position():
    b = run([1, 0, 0], hashes=["x", "y", "z"])
    t = run([0, 0, 1], hashes=["z", "y", "x"])  # same answers, other order
    d = task_delta(spec(), "probe", b, t, n_boot=500)
    assert d.delta == Estimate(0.0, 0.0, 0.0) and d.forgotten == 0


def test_mean_drop_of_constant_probes():
    def const(name, drop):
        b = run([1.0] * 50, task=name)
        t = run([1.0 - drop] * 50, task=name)
        return task_delta_with_reps(spec(name=name), "probe", b, t, n_boot=1000)

    (d1, r1), (d2, r2) = const("p1", 0.1), const("p2", 0.3)
    m = mean_drop([d1, d2], [r1, r2])
    assert m.value == pytest.approx(0.2)
    assert m.lo == pytest.approx(0.2, abs=1e-12) and m.hi == pytest.approx(0.2, abs=1e-12)
    tgt = task_delta_with_reps(spec(name="g", role="target"), "target", run([0] * 5), run([1] * 5), n_boot=100)
    assert mean_drop([tgt[0]], [tgt[1]]) is None
    assert mean_drop([d1, tgt[0]], [r1, tgt[1]]).value == pytest.approx(0.1)  # target ignored


def test_distinct_probes_get_independent_streams():
    b, t = run([1, 0] * 50), run([0, 1] * 25 + [1, 1] * 25)
    _, ra = task_delta_with_reps(spec(name="a"), "probe", b, t, n_boot=500)
    _, rb = task_delta_with_reps(spec(name="b"), "probe", b, t, n_boot=500)
    _, ra2 = task_delta_with_reps(spec(name="a"), "probe", b, t, n_boot=500)
    assert np.array_equal(ra, ra2)  # reproducible
    assert not np.array_equal(ra, rb)  # same data, different task -> different draws


def test_compressed_and_gather_paths_agree(monkeypatch):
    rng = np.random.default_rng(5)
    base = (rng.random(400) < 0.6).astype(float)
    tuned = np.where(rng.random(400) < 0.8, base, 1 - base)
    fast = percentile_ci(paired_bootstrap(base, tuned, n_boot=4000).diff_reps)
    monkeypatch.setattr(bootstrap, "_COMPRESS_RATIO", 10**9)  # force the index-matrix path
    slow = percentile_ci(paired_bootstrap(base, tuned, n_boot=4000).diff_reps)
    assert fast == pytest.approx(slow, abs=0.012)
    assert fast[0] < tuned.mean() - base.mean() < fast[1]


def test_coverage_of_paired_bootstrap():
    rng = np.random.default_rng(11)
    n, true_diff, hits = 200, 0.1, 0
    for _ in range(200):
        base = rng.random(n) < 0.5
        tuned = base.copy()
        flip_up, flip_down = rng.random(n) < 0.2, rng.random(n) < 0.2
        tuned = np.where(~base & flip_up, True, np.where(base & flip_down, False, tuned))
        # E[tuned - base] = 0.5*0.2 - 0.5*0.2 = 0; shift by making some ups unconditional
        extra = ~tuned & (rng.random(n) < 0.2)  # P(~tuned) = 0.5 -> adds 0.1 in expectation
        tuned = (tuned | extra).astype(float)
        lo, hi = percentile_ci(paired_bootstrap(base.astype(float), tuned, n_boot=2000, rng=rng).diff_reps)
        hits += lo <= true_diff <= hi
    assert 0.9 <= hits / 200 <= 0.99


def test_pair_report_orders_targets_first_and_records_bootstrap():
    ref = ModelRef("a", "local", "/a", "0" * 64)
    runs = {
        "p": (spec(name="p"), "probe", run([1, 1, 0, 0], task="p"), run([1, 0, 0, 0], task="p")),
        "g": (spec(name="g", role="target"), "target", run([0, 0], task="g"), run([1, 0], task="g")),
    }
    rep = metrics.pair_report(ref, ref, "g", runs, {"backend": "fake"}, n_boot=500)
    assert [d.task for d in rep.deltas] == ["g", "p"]
    assert rep.mean_drop.value == pytest.approx(0.25)
    assert rep.settings["backend"] == "fake" and rep.settings["bootstrap"]["n_boot"] == 500
