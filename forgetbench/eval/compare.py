"""`forgetbench compare A B`: paired comparison of two models' lm-eval `--log_samples` outputs.

A and B are `samples_<task>_<date>.jsonl` files or folders holding them (lm-eval's output folder:
searched recursively; per task the newest file is used). Items are paired by lm-eval's `doc_hash`
(per filter; repeated rows pair in doc_id order), and the two sides must hold the same items. Per
task, filter and per-sample metric: both scores, delta = B - A with its 95% interval
(forgetbench.stats.paired_interval: Tango's score interval for 0/1 metrics, Student t otherwise), the
items where A scored higher / where B did, and the exact McNemar p-value of those two counts (for a
non-binary metric that is the sign test). A metric whose per-sample value is a list (ifeval's
instruction-level accuracies) is scored as its mean, weighted by its length (lm-eval's micro mean).

Simplifications: p-values are per row, not adjusted for multiplicity; whether higher is better is
taken from lm-eval's results_*.json next to the samples when present (else assumed); metrics whose
per-sample values are not numbers (corpus-level BLEU inputs, perplexity pairs) are listed as skipped.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from forgetbench import stats
from forgetbench.errors import UserError

_SAMPLES = re.compile(r"samples_(?P<task>.+)_(?P<date>\d{4}-\d\d-\d\dT[0-9.\-]+)\.jsonl$")
_META = {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics", "doc_hash",
         "prompt_hash", "target_hash"}


@dataclass(frozen=True)
class Row:
    task: str
    filter: str
    metric: str
    n: int
    a: float
    b: float
    delta: float
    lo: float
    hi: float
    method: str
    a_higher: int  # items where A scored higher than B
    b_higher: int
    p_mcnemar: float
    higher_is_better: bool | None  # from lm-eval's results file; None when unknown


def find_samples(path: Path, side: str) -> dict[str, Path]:
    """task -> samples file of one side (a file, or the newest file per task under a folder)."""
    if path.is_file():
        m = _SAMPLES.search(path.name)
        if not m:
            raise UserError(f"{side} {path}: not an lm-eval samples file (samples_<task>_<date>.jsonl)")
        return {m["task"]: path}
    if not path.is_dir():
        raise UserError(f"{side} {path}: no such file or folder")
    found: dict[str, tuple[str, Path]] = {}
    for f in sorted(path.rglob("samples_*.jsonl")):
        m = _SAMPLES.search(f.name)
        if m and (m["task"] not in found or m["date"] > found[m["task"]][0]):
            found[m["task"]] = (m["date"], f)
    if not found:
        raise UserError(f"{side} {path}: no samples_<task>_<date>.jsonl files (run lm_eval with --log_samples"
                        " --output_path)")
    return {t: f for t, (_, f) in found.items()}


def _higher_is_better(samples: Path) -> dict[tuple[str, str], bool]:
    """(task, metric) -> higher_is_better from the results_*.json of the same run, when there is one."""
    m = _SAMPLES.search(samples.name)
    res = samples.with_name(f"results_{m['date']}.json") if m else None
    try:
        data = json.loads(res.read_text(encoding="utf-8")) if res and res.is_file() else {}
    except (OSError, ValueError):
        return {}
    return {(t, k): bool(v) for t, d in (data.get("higher_is_better") or {}).items() for k, v in d.items()}


def load(path: Path, side: str) -> dict[str, list[dict]]:
    """filter -> sample records of one samples file."""
    out: dict[str, list[dict]] = defaultdict(list)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{side} {path}: cannot read ({e})") from e
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise UserError(f"{side} {path}, line {i}: not JSON ({e})") from e
        if not isinstance(rec, dict) or "doc_hash" not in rec or "doc_id" not in rec:
            raise UserError(f"{side} {path}, line {i}: not an lm-eval sample (no doc_hash/doc_id); rerun with"
                            " --log_samples")
        out[str(rec.get("filter", "none"))].append(rec)
    return out


def _value(v) -> tuple[float, float] | None:
    """(score, weight) of one per-sample metric value; None when it is not a score."""
    if isinstance(v, (bool, int, float)) and np.isfinite(float(v)):
        return float(v), 1.0
    if isinstance(v, list) and v and all(isinstance(x, (bool, int, float)) for x in v):
        return float(np.mean([float(x) for x in v])), float(len(v))
    return None


def _pair(task: str, filt: str, a: list[dict], b: list[dict]) -> list[tuple[dict, dict]]:
    ca, cb = Counter(r["doc_hash"] for r in a), Counter(r["doc_hash"] for r in b)
    if ca != cb:
        only_a, only_b = sum((ca - cb).values()), sum((cb - ca).values())
        raise UserError(f"task {task} (filter {filt}): the two runs scored different items: {only_a} of A's"
                        f" {len(a)} and {only_b} of B's {len(b)} have no counterpart (rerun both on the same rows,"
                        " e.g. the same --limit)")
    order = lambda rs: sorted(rs, key=lambda r: (r["doc_hash"], r["doc_id"]))  # noqa: E731
    return list(zip(order(a), order(b)))


def _rows(task: str, filt: str, pairs, hib: dict, skipped: list[str]) -> list[Row]:
    names = [k for k in pairs[0][0].get("metrics") or [] if k not in _META]
    if not names:
        names = [k for k in pairs[0][0] if k not in _META]
    rows = []
    for metric in names:
        vals = [(_value(x.get(metric)), _value(y.get(metric))) for x, y in pairs]
        if any(u is None or v is None for u, v in vals):
            skipped.append(f"{task}/{filt}/{metric} (per-sample values are not scores)")
            continue
        xa, xb = np.array([u[0] for u, _ in vals]), np.array([v[0] for _, v in vals])
        w = np.array([u[1] for u, _ in vals])
        weighted = bool((w != 1).any())
        if weighted and not np.array_equal(w, [v[1] for _, v in vals]):
            skipped.append(f"{task}/{filt}/{metric} (list lengths differ between A and B)")
            continue
        iv = stats.paired_interval(xa, xb, weights=w if weighted else None)
        ma, mb = (float(np.average(x, weights=w)) for x in (xa, xb))
        a_hi, b_hi = int((xa > xb).sum()), int((xb > xa).sum())
        rows.append(Row(task, filt, metric, len(pairs), ma, mb, iv.value, iv.lo, iv.hi, iv.method, a_hi, b_hi,
                        stats.mcnemar_exact(a_hi, b_hi), hib.get((task, f"{metric},{filt}"), hib.get((task, metric)))))
    return rows


def compare(a: Path, b: Path) -> tuple[list[Row], list[str]]:
    """Rows for every task and metric both sides have, and notes (tasks on one side only, skipped metrics)."""
    fa, fb = find_samples(Path(a), "A"), find_samples(Path(b), "B")
    common = sorted(set(fa) & set(fb))
    if not common:
        raise UserError(f"A and B have no task in common (A: {', '.join(sorted(fa))}; B: {', '.join(sorted(fb))})")
    notes = [f"task {t} is only in {side}" for side, only in (("A", set(fa) - set(fb)), ("B", set(fb) - set(fa)))
             for t in sorted(only)]
    rows: list[Row] = []
    for task in common:
        sa, sb = load(fa[task], "A"), load(fb[task], "B")
        if set(sa) != set(sb):
            raise UserError(f"task {task}: A has filters {sorted(sa)}, B has {sorted(sb)} (different task configs)")
        hib = _higher_is_better(fa[task])
        for filt in sorted(sa):
            rows += _rows(task, filt, _pair(task, filt, sa[filt], sb[filt]), hib, notes)
    return rows, notes


def render(rows: list[Row], notes: list[str], a: Path, b: Path) -> str:
    pts = lambda x, s=False: f"{100 * x + 0.0:+.1f}" if s else f"{100 * x + 0.0:.1f}"  # noqa: E731
    head = ("task", "filter", "metric", "n", "A", "B", "B - A [95% CI]", "A>B", "B>A", "p")
    body = [(r.task, r.filter, r.metric, str(r.n), pts(r.a), pts(r.b),
             f"{pts(r.delta, True)} [{pts(r.lo, True)}, {pts(r.hi, True)}]", str(r.a_higher), str(r.b_higher),
             "<0.001" if r.p_mcnemar < 0.001 else f"{r.p_mcnemar:.3f}") for r in rows]
    widths = [max(len(x[i]) for x in (head, *body)) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    lines = [f"A  {a}", f"B  {b}", "", fmt(head), "  ".join("-" * w for w in widths), *map(fmt, body), ""]
    methods = sorted({r.method for r in rows})
    lines.append(f"points = x100; 95% CIs by forgetbench.stats ({', '.join(methods)}); A>B / B>A = items where that"
                 " side scored higher; p = exact McNemar (sign) test of those counts, per row")
    lower = [f"{r.task}/{r.metric}" for r in rows if r.higher_is_better is False]
    if lower:
        lines.append(f"lower is better for: {', '.join(lower)}")
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines) + "\n"


def main(args) -> int:
    rows, notes = compare(args.a, args.b)
    if args.json:
        print(json.dumps({"a": str(args.a), "b": str(args.b), "intervals": stats.settings(),
                          "rows": [asdict(r) for r in rows], "notes": notes}, indent=2))
    else:
        sys.stdout.write(render(rows, notes, args.a, args.b))
    return 0
