"""Report rendering: the table shows the numbers, and JSON round-trips the whole PairReport."""

import json

from forgetbench.records import Estimate, ModelRef, PairReport, TaskDelta
from forgetbench.eval.report import render_table, to_json


def _report(mean=Estimate(0.0225, -0.004, 0.05, "mover")):
    base = ModelRef("HuggingFaceTB/SmolLM2-135M-Instruct", "hub", "/m/base", "ab" * 32, revision="r1",
                    has_chat_template=True, meta={"files": ("a", "b")})
    tuned = ModelRef("./out/ckpt", "local", "/m/tuned", "cd" * 32)
    gsm = TaskDelta("gsm8k", "target", "exact_match,flexible-extract", 1319,
                    Estimate(0.331, 0.31, 0.35, "wilson"), Estimate(0.452, 0.43, 0.47, "wilson"),
                    Estimate(0.121, 0.102, 0.14, "tango"), 40, 200, p_mcnemar=1.5e-23, verdict="gained")
    harm = TaskDelta("safety", "probe", "acc", 100, Estimate(0.9, 0.8, 1.0), Estimate(0.8, 0.7, 0.9),
                     Estimate(0.1, 0.0, 0.2), 12, 2)
    safe = TaskDelta("safety", "probe", "acc", 250, Estimate(0.5, 0.4, 0.6), Estimate(0.555, 0.5, 0.6),
                     Estimate(-0.055, -0.1, 0.0), 3, 17)
    saf = TaskDelta("safety", "probe", "acc", 350, Estimate(0.7, 0.65, 0.75), Estimate(0.6775, 0.6, 0.7),
                    Estimate(0.0225, -0.004, 0.05, "mover(tango)"), 15, 19, sub={"kind=harmful": harm, "kind=safe": safe},
                    p_mcnemar=0.6076, p_holm=0.6076, verdict="n.s.")
    return PairReport(base, tuned, "gsm8k", (gsm, saf), mean, {"backend": "hf", "intervals": {"level": 0.95}})


def test_table_shows_tasks_and_points():
    text = render_table(_report())
    lines = text.splitlines()
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in lines[0] and "abababababab" in lines[0]
    assert "cdcdcdcdcdcd" in lines[1] and lines[2] == "target gsm8k"
    row = next(line for line in lines if line.startswith("gsm8k"))
    assert row.split() == ["gsm8k", "target", "exact_match,flexible-extract", "1319", "33.1", "45.2",
                           "+12.1", "[+10.2,", "+14.0]", "40", "200", "<0.001", "gained"]
    assert next(line for line in lines if line.startswith("safety")).split()[-2:] == ["0.608", "n.s."]
    sub = next(line for line in lines if "kind=safe" in line)
    assert sub.startswith("  kind=safe") and "-5.5 [-10.0, +0.0]" in sub
    assert "mean drop over 1 probe(s): +2.2 [-0.4, +5.0] points" in text
    # the footer names every interval method the table used
    assert ("95% CIs: mover = MOVER mean; mover(tango) = MOVER over strata of tango; tango = Tango score;"
            " wilson = Wilson") in text
    # columns are aligned: every table row has the delta cell at the same offset
    header = next(line for line in lines if line.startswith("task"))
    col = header.index("gain/drop")
    for line in lines:
        if line.startswith(("gsm8k", "safety", "  kind")):
            assert line[col - 1] == " " and line[col] in "+-"


def test_table_without_probes():
    assert "mean drop over probes: n/a" in render_table(_report(mean=None))


def test_json_form():
    rep = _report()
    d = json.loads(json.dumps(to_json(rep)))  # plain JSON types only
    assert d["deltas"][1]["sub"]["kind=harmful"]["n"] == rep.deltas[1].sub["kind=harmful"].n
    assert d["base"]["content_hash"] == "ab" * 32 and d["tuned"]["content_hash"] == "cd" * 32
    assert d["deltas"][1]["sub"]["kind=safe"]["delta"] == {"value": -0.055, "lo": -0.1, "hi": 0.0, "method": ""}
    assert d["deltas"][1]["delta"]["method"] == "mover(tango)" and d["mean_drop"]["method"] == "mover"
    assert (d["deltas"][1]["p_mcnemar"], d["deltas"][1]["p_holm"], d["deltas"][1]["verdict"]) == (0.6076, 0.6076, "n.s.")
    assert d["base"]["meta"] == {"files": ["a", "b"]}  # meta is JSON-native
    assert to_json(_report(mean=None))["mean_drop"] is None
