"""Rendering a PairReport: an aligned plain-text table for the terminal, and a JSON round trip.

Numbers in the table are points (x100, one decimal): base, tuned, and the signed delta with its
95% CI, where positive = gain on a target / drop (forgetting) on a probe (see forgetbench.stats.paired),
then the exact McNemar p-value of the flips and the verdict (probes: Holm-adjusted over the pair's
probes). The footer names the interval methods the table used (forgetbench.stats).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from forgetbench.records import Estimate, ModelRef, PairReport, TaskDelta

JSON_VERSION = 2  # 2: estimates carry their method; deltas carry p_mcnemar, p_holm, verdict
_HEAD = ("task", "role", "metric", "n", "base", "tuned", "gain/drop [95% CI]", "forgot", "learned", "p", "verdict")
_RIGHT = {3, 4, 5, 7, 8, 9}  # numeric columns are right-aligned
_METHODS = {  # footer wording of forgetbench.stats method names
    "tango": "Tango score", "tango-deff": "Tango score with a design effect (clusters/weights)",
    "tango-range": "Tango score on the score range", "t": "Student t", "wilson": "Wilson",
    "wilson-deff": "Wilson with a design effect", "wilson-range": "Wilson on the score range",
    "mover": "MOVER mean",
}


def _pts(x: float, signed: bool = False) -> str:
    v = round(100 * x, 1) + 0.0  # + 0.0 turns -0.0 (a zero drop, sign-flipped) into 0.0
    return f"{v:+.1f}" if signed else f"{v:.1f}"


def _delta_cell(e: Estimate) -> str:
    return f"{_pts(e.value, True)} [{_pts(e.lo, True)}, {_pts(e.hi, True)}]"


def p_text(p: float | None) -> str:
    """A p-value for a table cell: 3 decimals, "<0.001" below that, "" when absent."""
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _row(d: TaskDelta, name: str, indent: str) -> list[str]:
    return [
        indent + name, d.role if not indent else "", d.metric, str(d.n), _pts(d.base.value), _pts(d.tuned.value),
        _delta_cell(d.delta), str(d.forgotten), str(d.learned), p_text(d.p_mcnemar), d.verdict or "",
    ]


def _methods_line(report: PairReport) -> str:
    rows = [r for d in report.deltas for r in (d, *d.sub.values())]
    names = sorted({e.method for r in rows for e in (r.base, r.tuned, r.delta)} - {""})
    if report.mean_drop is not None and report.mean_drop.method:
        names = sorted({*names, report.mean_drop.method})
    if not names:
        return "95% CIs from a record that predates method names"
    word = lambda m: _METHODS.get(m, m) if not m.startswith("mover(") else f"MOVER over strata of {m[6:-1]}"  # noqa: E731
    return "95% CIs: " + "; ".join(f"{m} = {word(m)}" for m in names)


def _model_line(label: str, m: ModelRef) -> str:
    return f"{label:<6} {m.spec}  ({m.kind}, {m.short})"


def render_table(report: PairReport) -> str:
    """Header with both models and the target, one row per task (sub-rows indented), mean drop."""
    rows = [list(_HEAD)]
    for d in report.deltas:
        rows.append(_row(d, d.task, ""))
        rows.extend(_row(s, name, "  ") for name, s in d.sub.items())
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEAD))]
    fmt = lambda r: "  ".join(  # noqa: E731
        c.rjust(w) if i in _RIGHT else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))
    ).rstrip()
    lines = [
        _model_line("base", report.base),
        _model_line("tuned", report.tuned),
        f"target {report.target or '(none)'}" + (f"   (pair {report.pair_id})" if report.pair_id else ""),
        "",
        fmt(rows[0]),
        "  ".join("-" * w for w in widths),
        *(fmt(r) for r in rows[1:]),
        "",
    ]
    n_probes = sum(d.role == "probe" for d in report.deltas)
    if report.mean_drop is None:
        lines.append("mean drop over probes: n/a (no probes)")
    else:
        lines.append(f"mean drop over {n_probes} probe(s): {_delta_cell(report.mean_drop)} points")
    if report.kl:
        k = report.kl
        f = lambda e: f"{e['value']:.4g} [{e['lo']:.4g}, {e['hi']:.4g}]"  # noqa: E731
        lines.append(f"forward KL(base || tuned) on {k['task']} prompts: {f(k['fwd_seq'])} nats/sequence, "
                     f"{f(k['fwd_tok'])} nats/token ({k['n_seq']} base samples, {k['n_tokens']} tokens)")
        lines.append(f"  per token: reverse KL {f(k['rev_tok'])}, total variation {f(k['tv_tok'])}")
    else:
        lines.append(f"forward KL: not computed ({report.settings.get('kl_skipped', 'no target task')})")
    lines.append("points = x100; gain/drop > 0 means the target improved / a probe got worse")
    lines.append(_methods_line(report))
    lines.append("p = exact McNemar test of forgot vs learned; verdict: probes Holm-adjusted over the pair's probes"
                 " (dropped / improved / n.s.), the target unadjusted (gained / lost / n.s.)")
    return "\n".join(lines) + "\n"


def _plain(x: Any) -> Any:
    """JSON-native copy (tuples -> lists, unknown objects -> str) so to_json never fails to dump."""
    return json.loads(json.dumps(x, default=str))


def _est_json(e: Estimate | None) -> dict | None:
    return None if e is None else {"value": e.value, "lo": e.lo, "hi": e.hi, "method": e.method}


def _delta_json(d: TaskDelta) -> dict:
    return {
        "task": d.task,
        "role": d.role,
        "metric": d.metric,
        "n": d.n,
        "base": _est_json(d.base),
        "tuned": _est_json(d.tuned),
        "delta": _est_json(d.delta),
        "forgotten": d.forgotten,
        "learned": d.learned,
        "p_mcnemar": d.p_mcnemar,
        "p_holm": d.p_holm,
        "verdict": d.verdict,
        "sub": {k: _delta_json(s) for k, s in d.sub.items()},
    }


def to_json(report: PairReport) -> dict:
    """Everything in the report as plain JSON data with fixed keys."""
    return {
        "version": JSON_VERSION,
        "base": _plain(asdict(report.base)),
        "tuned": _plain(asdict(report.tuned)),
        "target": report.target,
        "deltas": [_delta_json(d) for d in report.deltas],
        "mean_drop": _est_json(report.mean_drop),
        "settings": _plain(report.settings),
        "kl": _plain(report.kl),
        "pair_id": report.pair_id,
    }
