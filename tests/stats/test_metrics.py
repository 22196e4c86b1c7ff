"""Paired statistics: hand-computed values, interval methods, clusters, strata, tests, coverage; and the
bootstrap engine that the forward-KL CIs still use."""

import numpy as np
import pytest

from forgetbench.stats import bootstrap, paired as metrics
from forgetbench import stats
from forgetbench.stats.bootstrap import paired_bootstrap, percentile_ci
from forgetbench.errors import UserError
from forgetbench.stats.paired import mean_drop, task_delta, with_tests
from forgetbench.records import ItemResult, ModelRef, TaskRun, TaskSpec


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


def test_identical_runs_give_zero_with_an_honest_interval():
    s = [1, 0, 1, 1, 0, 0.5]
    d = task_delta(spec(), "probe", run(s), run(s))
    assert d.delta.value == 0.0 and d.delta.lo < 0 < d.delta.hi  # never [0, 0] for a finite sample
    assert d.forgotten == d.learned == 0 and d.p_mcnemar == 1.0
    assert d.base.value == d.tuned.value == pytest.approx(3.5 / 6)


def test_known_pair_target_and_probe():
    b, t = run([1, 1, 0, 0]), run([1, 0, 1, 1])
    g = task_delta(spec(role="target"), "target", b, t)
    assert g.delta.value == pytest.approx(0.25)
    assert (g.base.value, g.tuned.value) == (0.5, 0.75)
    assert (g.forgotten, g.learned, g.n) == (1, 2, 4)
    assert (g.base.method, g.delta.method) == ("wilson", "tango")
    assert g.p_mcnemar == 1.0  # 1 vs 2 flips: 2 * P(X <= 1 | 3, 1/2) = 1
    p = task_delta(spec(), "probe", b, t)
    assert p.delta.value == pytest.approx(-0.25)
    assert (p.forgotten, p.learned) == (1, 2)
    assert (p.delta.lo, p.delta.hi) == pytest.approx((-g.delta.hi, -g.delta.lo))  # a drop is a negated gain


def test_lower_is_better_flips_sign_and_rightness():
    b, t = run([0.0, 0.0, 1.0]), run([1.0, 0.0, 1.0])  # e.g. error rate: tuned got worse
    p = task_delta(spec(hib=False), "probe", b, t)
    assert p.delta.value == pytest.approx(1 / 3)  # a drop for a probe
    g = task_delta(spec(hib=False, role="target"), "target", b, t)
    assert g.delta.value == pytest.approx(-1 / 3)
    assert (p.forgotten, p.learned) == (1, 0)  # item 0: right (low) -> wrong (high)


def test_non_binary_scores_get_a_t_interval_by_hand():
    # differences 0.5 and 0.75: mean 0.625, sd 0.25 / sqrt(2), t_1 = 12.7062
    b, t = run([0.0, 0.25]), run([0.5, 1.0])
    d = task_delta(spec(role="target"), "target", b, t)
    half = 12.7062047 * (0.25 / np.sqrt(2)) / np.sqrt(2)
    assert d.delta.method == "t"
    assert (d.delta.value, d.delta.lo, d.delta.hi) == pytest.approx((0.625, 0.625 - half, 0.625 + half), abs=1e-6)


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


def test_clustered_task_uses_the_design_effect():
    n_cl, size = 30, 6
    clusters = [f"c{i // size}" for i in range(n_cl * size)]
    diff = np.repeat(np.resize([1, 0, 0, -1, 0], n_cl), size)  # whole clusters flip together
    b = run(np.where(diff < 0, 1, 0), clusters=clusters)
    t = run(np.where(diff < 0, 1, 0) + diff, clusters=clusters)
    d = task_delta(spec(role="target", cluster_key="c"), "target", b, t)
    flat = task_delta(spec(role="target"), "target", run(np.where(diff < 0, 1, 0)), run(np.where(diff < 0, 1, 0) + diff))
    assert (d.delta.method, d.base.method, flat.delta.method) == ("tango-deff", "wilson-deff", "tango")
    assert d.delta.value == flat.delta.value
    assert d.delta.hi - d.delta.lo > 1.8 * (flat.delta.hi - flat.delta.lo)


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
    d = task_delta(spec(strata_key="kind"), "probe", b, t)
    assert d.base.value == pytest.approx(0.75)  # pooled would be 25/40
    assert d.tuned.value == pytest.approx(0.75)  # pooled would be 35/40
    assert d.delta.value == pytest.approx(0.0)
    assert set(d.sub) == {"kind=harmful", "kind=safe"}
    assert d.sub["kind=harmful"].delta.value == pytest.approx(0.5) and d.sub["kind=harmful"].n == 10
    assert d.sub["kind=safe"].delta.value == pytest.approx(-0.5) and d.sub["kind=safe"].forgotten == 0
    assert d.sub["kind=safe"].learned == 15
    assert d.delta.method == "mover(tango)" and d.base.method == "mover(wilson)"
    h = d.sub["kind=harmful"].base  # base refused every harmful prompt: Wilson, not [1, 1]
    assert (h.value, h.method) == (1.0, "wilson") and h.hi == pytest.approx(1.0) and h.lo < 0.8


def test_extra_metric_uses_instruction_counts_for_micro_mean():
    key = "inst_level_loose_acc,none"
    mb = [{key: 1.0, key + "__n": 1}, {key: 0.0, key + "__n": 3}]
    mt = [{key: 1.0, key + "__n": 1}, {key: 1 / 3, key + "__n": 3}]
    b, t = run([1, 0], metrics_=mb), run([1, 0], metrics_=mt)
    d = task_delta(spec(extra=["inst_level_loose_acc", "not_produced"]), "probe", b, t)
    sub = d.sub["inst_level_loose_acc"]
    assert sub.metric == key
    assert sub.base.value == pytest.approx(0.25)  # (1*1 + 3*0) / 4, not the per-prompt mean 0.5
    assert sub.tuned.value == pytest.approx(0.5)
    assert sub.delta.value == pytest.approx(-0.25)
    assert (sub.delta.method, sub.base.method) == ("tango-deff", "wilson-deff")
    assert "not_produced" not in d.sub


def test_mismatched_doc_hashes_raise():
    b = run([1, 0, 1])
    t = run([1, 0, 1], hashes=["h0", "h1", "zz"])
    with pytest.raises(UserError, match=r"task t: mismatched inputs: 1 base item"):
        task_delta(spec(), "probe", b, t)


def test_pairs_by_hash_not_position():
    b = run([1, 0, 0], hashes=["x", "y", "z"])
    t = run([0, 0, 1], hashes=["z", "y", "x"])  # same answers, other order
    d = task_delta(spec(), "probe", b, t)
    assert d.delta.value == 0.0 and d.forgotten == d.learned == 0


def test_mean_drop_is_the_mover_mean_of_the_probes():
    def probe(name, scores_b, scores_t):
        return task_delta(spec(name=name), "probe", run(scores_b, task=name), run(scores_t, task=name))

    d1 = probe("p1", [1] * 40 + [0] * 10, [1] * 30 + [0] * 20)  # drop 0.2
    d2 = probe("p2", [1] * 50, [1] * 45 + [0] * 5)  # drop 0.1
    m = mean_drop([d1, d2])
    assert m.value == pytest.approx(0.15) and m.method == "mover"
    want = stats.mean_of([metrics.interval_of(d1.delta), metrics.interval_of(d2.delta)])
    assert (m.lo, m.hi) == (want.lo, want.hi) and m.lo < 0.15 < m.hi
    tgt = task_delta(spec(name="g", role="target"), "target", run([0] * 5, task="g"), run([1] * 5, task="g"))
    assert mean_drop([tgt]) is None
    assert mean_drop([d1, tgt]).value == pytest.approx(0.2)  # target ignored


def test_holm_verdicts_across_the_probes():
    def probe(name, forgot, n=60):
        return task_delta(spec(name=name), "probe", run([1] * n, task=name), run([0] * forgot + [1] * (n - forgot), task=name))

    strong, weak, none = probe("a", 12), probe("b", 4), probe("c", 0)
    assert weak.p_mcnemar == pytest.approx(0.125)  # 4 vs 0 flips
    tgt = task_delta(spec(name="g", role="target"), "target", run([0] * 30, task="g"), run([1] * 10 + [0] * 20, task="g"))
    out = with_tests([tgt, strong, weak, none])
    assert [d.verdict for d in out] == ["gained", "dropped", "n.s.", "n.s."]
    assert out[1].p_holm == pytest.approx(3 * strong.p_mcnemar) and out[0].p_holm is None
    assert out[2].p_holm == pytest.approx(min(1, 2 * weak.p_mcnemar)) and out[3].p_holm == 1.0
    # a probe that would reject alone (6 vs 0 flips: p = 0.031) does not survive the adjustment over 5 probes
    five = with_tests([probe(f"q{i}", 6 if i == 0 else 0) for i in range(5)])
    assert five[0].p_mcnemar < 0.05 and five[0].verdict == "n.s."
    assert with_tests([probe("q0", 6)])[0].verdict == "dropped"


def test_compressed_and_gather_paths_agree(monkeypatch):
    rng = np.random.default_rng(5)
    base = (rng.random(400) < 0.6).astype(float)
    tuned = np.where(rng.random(400) < 0.8, base, 1 - base)
    fast = percentile_ci(paired_bootstrap(base, tuned, n_boot=4000).diff_reps)
    monkeypatch.setattr(bootstrap, "_COMPRESS_RATIO", 10**9)  # force the index-matrix path
    slow = percentile_ci(paired_bootstrap(base, tuned, n_boot=4000).diff_reps)
    assert fast == pytest.approx(slow, abs=0.012)
    assert fast[0] < tuned.mean() - base.mean() < fast[1]


def test_coverage_of_the_task_interval():
    rng = np.random.default_rng(11)
    n, hits = 200, 0
    for _ in range(300):
        base = rng.random(n) < 0.5
        u = rng.random(n)
        tuned = np.where(base, u >= 0.06, u < 0.02)  # forget 6%, learn 2%: true drop 0.5 * 0.04 = 0.02
        d = task_delta(spec(), "probe", run(base.astype(float)), run(tuned.astype(float)))
        hits += d.delta.lo <= 0.02 <= d.delta.hi
    assert 0.92 <= hits / 300 <= 0.98


def test_pair_report_orders_targets_first_and_records_the_methods():
    ref = ModelRef("a", "local", "/a", "0" * 64)
    runs = {
        "p": (spec(name="p"), "probe", run([1, 1, 0, 0], task="p"), run([1, 0, 0, 0], task="p")),
        "g": (spec(name="g", role="target"), "target", run([0, 0], task="g"), run([1, 0], task="g")),
    }
    rep = metrics.pair_report(ref, ref, "g", runs, {"backend": "fake"})
    assert [d.task for d in rep.deltas] == ["g", "p"]
    assert rep.mean_drop.value == pytest.approx(0.25) and rep.mean_drop.method == "mover"
    assert rep.settings["backend"] == "fake" and rep.settings["intervals"] == stats.settings()
    assert [d.verdict for d in rep.deltas] == ["n.s.", "n.s."] and rep.deltas[1].p_holm == 1.0
