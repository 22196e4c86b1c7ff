"""metric_values.values_clean (a metric at a time) never passes a task the per-item loop would report on."""

import pytest

from forgetbench.leaderboard import metric_values
from forgetbench.tasks import registry


def _task(metrics_of, score_of=lambda j, side: 1.0 if (j + (side == "tuned")) % 2 else 0.0):
    items = [{"doc_id": j, **{side: {"score": score_of(j, side), "metrics": metrics_of(j, side), "response": ""}
                             for side in ("base", "tuned")}} for j in range(6)]
    return {"items": items, "primary_metric": "prompt_level_strict_acc,none"}


CASES = {
    "clean": lambda j, s: {"prompt_level_strict_acc,none": float(j % 2)},
    "fraction ok": lambda j, s: {"inst_level_strict_acc,none": j / 5, "inst_level_strict_acc,none__n": 3},
    "fraction over 1": lambda j, s: {"inst_level_strict_acc,none": 1.5 if j == 4 else 0.5},
    "count zero": lambda j, s: {"inst_level_strict_acc,none__n": 0 if j == 2 else 2},
    "count fractional": lambda j, s: {"inst_level_strict_acc,none__n": 2.5 if s == "tuned" else 2},
    "binary 0.5": lambda j, s: {"prompt_level_strict_acc,none": 0.5 if j == 5 else 1},
    "unknown metric": lambda j, s: {"made_up,none": 1.0},
    "some items lack a metric": lambda j, s: {"prompt_level_loose_acc,none": 1.0} if j % 2 else {},
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("score", ["binary", "fraction"])
def test_values_fast_path_agrees_with_the_loop(case, score, monkeypatch):
    spec = registry.get("ifeval")
    t = _task(CASES[case]) if score == "binary" else _task(CASES[case], lambda j, side: 0.25)
    fast, slow = [], []
    metric_values.check_values(t, 0, spec, lambda f, m: fast.append((f, m)))
    monkeypatch.setattr(metric_values, "values_clean", lambda t, spec: False)
    metric_values.check_values(t, 0, spec, lambda f, m: slow.append((f, m)))
    assert fast == slow
    assert (not slow) == (case in ("clean", "fraction ok", "some items lack a metric") and score == "binary")
