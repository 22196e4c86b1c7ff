"""Coverage and width of forgetbench's 95% intervals for the drop, by simulation, next to the old
percentile bootstrap (10,000 replicates of the paired items; forgetbench <= 0.1's method).

Generating model (per item): the base is right with probability p (per cluster, below); a base-right
item is forgotten (tuned wrong) with probability f, a base-wrong item learned with probability l.
The **true drop** is the expected paired difference under this model, E[base - tuned] = p f - (1 - p) l
(for strata: the mean of the strata's true drops; for clusters: its expectation over the cluster
distribution). An interval covers when lo <= true drop <= hi.

Cells:
- paired 0/1 items: n in {48, 200, 1000, 5000} x p in {0.1, 0.5, 0.9} x f, l in {0, 0.5%, 2%, 10%};
- clustered (mmlu-like): 57 clusters of unequal size (Dirichlet(3) shares of n), drawn afresh in
  every data set: per-cluster p ~ Beta(mean 0.5, sd 0.15) and per-cluster forget / learn rates
  ~ Beta(mean f / l, sd = mean) (subjects forget together); a stress case with sd = 2 x mean;
- two strata (safety-like): a third of the items "harmful" (p = 0.9), the rest "safe" (p = 0.6), the
  aggregate being the mean of the two stratum rates, flips as given per stratum;
- weighted (ifeval instruction-level-like): prompts of 1-3 instructions, the score the micro mean over
  instructions (weights = instruction counts), prompt-level random accuracy;
- mean drop over 5 probes of different sizes and rates (the probes' MOVER mean).

The paired 0/1 cells depend on the data only through the (learned, forgotten) counts, so both methods
are computed once per distinct count pair; the bootstrap replicates are drawn as the multinomial of
the item types, which is what resampling the items does. The other cells call forgetbench.stats and
forgetbench.stats.bootstrap on every simulated data set.

    python benchmarks/coverage.py [--sims 1000] [--boot 10000] [--seed 0] [--only paired|clustered|strata|weighted|mean]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from forgetbench.stats.bootstrap import paired_bootstrap, percentile_ci  # noqa: E402
from forgetbench.stats import LEVEL, mean_of, paired_interval, z_quantile  # noqa: E402
from forgetbench.stats.score import tango  # noqa: E402

NS = (48, 200, 1000, 5000)
ACCS = (0.1, 0.5, 0.9)
RATES = (0.0, 0.005, 0.02, 0.1)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _boot_ci_counts(up: np.ndarray, down: np.ndarray, n: int, n_boot: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap limits of mean(tuned - base) for each (up, down) count pair: resampling
    the n items = drawing (up*, down*) ~ Multinomial(n; up/n, down/n)."""
    lo, hi = np.empty(len(up)), np.empty(len(up))
    rows = max(1, 2_000_000 // n_boot)
    for s in range(0, len(up), rows):
        u, d = up[s : s + rows, None], down[s : s + rows, None]
        k = rng.binomial(n, (u + d) / n, size=(len(u), n_boot))
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(u + d > 0, u / np.maximum(u + d, 1), 0.0)
        u_star = rng.binomial(k, share)
        diff = (2 * u_star - k) / n
        q = np.quantile(diff, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=1)
        lo[s : s + rows], hi[s : s + rows] = q[0], q[1]
    return lo, hi


def _binom_pmf(n: int, p: float, tol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """(k, P(K = k)) of Binomial(n, p) where the probability is at least tol."""
    if p <= 0 or p >= 1:
        return np.array([0 if p <= 0 else n]), np.array([1.0])
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    k = np.arange(max(0, int(mean - 12 * sd - 5)), min(n, int(mean + 12 * sd + 5)) + 1)
    logc = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
    pmf = np.exp(logc + k * math.log(p) + (n - k) * math.log1p(-p))
    keep = pmf >= tol
    return k[keep], pmf[keep]


def exact_tango_coverage(n: int, p_up: float, p_down: float, cache: dict) -> float:
    """Coverage of the tango interval computed exactly: the sum over (up, down) counts of their
    multinomial probability (ignoring terms below 1e-12) where the interval covers p_up - p_down."""
    z, truth, cov = z_quantile(LEVEL), p_up - p_down, 0.0
    for u, pu in zip(*_binom_pmf(n, p_up)):
        for d, pd in zip(*_binom_pmf(int(n - u), p_down / (1 - p_up) if p_up < 1 else 0.0)):
            key = (int(u), int(d), n)
            if key not in cache:
                cache[key] = tango(float(u), float(d), n, z)
            lo, hi = cache[key]
            cov += pu * pd * (lo - 1e-12 <= truth <= hi + 1e-12)
    return cov


def paired_cells(sims: int, n_boot: int, rng) -> list[dict]:
    z = z_quantile(LEVEL)
    out, cache = [], {}
    for n in NS:
        for p in ACCS:
            for f in RATES:
                for lr in RATES:
                    p_down, p_up = p * f, (1 - p) * lr
                    truth = p_up - p_down  # tuned - base; the drop is its negative
                    counts = rng.multinomial(n, [p_up, p_down, 1 - p_up - p_down], size=sims)[:, :2]
                    pairs, inv = np.unique(counts, axis=0, return_inverse=True)
                    inv = inv.reshape(-1)
                    new = np.array([tango(float(u), float(d), n, z) for u, d in pairs])
                    blo, bhi = _boot_ci_counts(pairs[:, 0].astype(float), pairs[:, 1].astype(float), n, n_boot, rng)
                    row = {"case": "paired", "n": n, "p": p, "f": f, "l": lr, "flips": n * (p_down + p_up)}
                    row.update(_score(truth, new[inv, 0], new[inv, 1], blo[inv], bhi[inv]))
                    row["new_method"] = "tango"
                    row["exact"] = exact_tango_coverage(n, p_up, p_down, cache)
                    out.append(row)
    return out


def _score(truth, lo, hi, blo, bhi) -> dict:
    eps = 1e-12  # limits equal to the truth up to rounding cover it
    cov = lambda a, b: float(np.mean((a <= truth + eps) & (truth - eps <= b)))  # noqa: E731
    return {"new_cov": cov(lo, hi), "new_width": float(np.mean(hi - lo)),
            "boot_cov": cov(blo, bhi), "boot_width": float(np.mean(bhi - blo)),
            "boot_zero": float(np.mean(bhi - blo <= 0)), "new_zero": float(np.mean(hi - lo <= 0))}


def _beta(mean: float, cv: float, size, rng) -> np.ndarray:
    """Beta draws with the given mean and coefficient of variation (sd / mean); mean 0 gives 0."""
    if mean <= 0:
        return np.zeros(size)
    k = (1 - mean) / (cv * cv * mean) - 1  # a + b, from var = mean (1 - mean) / (a + b + 1)
    return rng.beta(mean * k, (1 - mean) * k, size)


def _run_sets(make, sims: int, n_boot: int, truth: float, rng, **kw) -> dict:
    lo, hi, blo, bhi, methods = [], [], [], [], set()
    for _ in range(sims):
        b, t, extra = make(rng)
        iv = paired_interval(b, t, **extra)
        methods.add(iv.method)
        bt = paired_bootstrap(b, t, n_boot=n_boot, rng=rng, **extra)
        a, c = percentile_ci(bt.diff_reps)
        lo.append(iv.lo), hi.append(iv.hi), blo.append(a), bhi.append(c)
    row = _score(truth, *map(np.array, (lo, hi, blo, bhi)))
    return {**kw, **row, "new_method": ",".join(sorted(methods))}


def clustered_cells(sims: int, n_boot: int, rng) -> list[dict]:
    out = []
    for cv, label in ((1.0, "clustered"), (2.0, "clustered, cv 2")):
        for n in (200, 1000, 5000) if cv == 1.0 else (1000,):
            sizes = np.maximum(1, np.round(n * rng.dirichlet(np.full(57, 3.0)))).astype(int)
            labels = np.repeat(np.arange(57), sizes)
            for f, lr in ((0.02, 0.0), (0.1, 0.0), (0.1, 0.02), (0.02, 0.02)):
                def make(g, f=f, lr=lr, cv=cv):
                    pc, fc, lc = _beta(0.5, 0.3, 57, g), _beta(f, cv, 57, g), _beta(lr, cv, 57, g)
                    base = g.random(len(labels)) < pc[labels]
                    u = g.random(len(labels))
                    tuned = np.where(base, u >= fc[labels], u < lc[labels])
                    return base.astype(float), tuned.astype(float), {"clusters": labels}
                truth = (1 - 0.5) * lr - 0.5 * f  # independent cluster effects: E[(1-p) l] - E[p f]
                out.append(_run_sets(make, sims, n_boot, truth, rng, case=label, n=int(sizes.sum()), p=0.5,
                                     f=f, l=lr, flips=sizes.sum() * (0.5 * f + 0.5 * lr)))
    return out


def strata_cells(sims: int, n_boot: int, rng) -> list[dict]:
    out = []
    for n in (48, 200, 1000):
        nh = n // 3
        strata = np.array(["harmful"] * nh + ["safe"] * (n - nh))
        ps = np.where(strata == "harmful", 0.9, 0.6)
        for f, lr in ((0.0, 0.0), (0.02, 0.0), (0.1, 0.02), (0.02, 0.1)):
            def make(g, f=f, lr=lr):
                base = g.random(n) < ps
                u = g.random(n)
                tuned = np.where(base, u >= f, u < lr)
                return base.astype(float), tuned.astype(float), {"strata": strata}
            truth = np.mean([(1 - p) * lr - p * f for p in (0.9, 0.6)])
            out.append(_run_sets(make, sims, n_boot, truth, rng, case="strata", n=n, p="0.9/0.6", f=f, l=lr,
                                 flips=n / 3 * (0.9 * f + 0.1 * lr) + 2 * n / 3 * (0.6 * f + 0.4 * lr)))
    return out


def weighted_cells(sims: int, n_boot: int, rng) -> list[dict]:
    """ifeval-like: a prompt's score is the mean of its 1-3 instructions (weight = their number); the
    aggregate is the micro mean over instructions. Per-prompt p ~ Beta(mean 0.6, sd 0.2)."""
    out = []
    for n in (48, 200, 1000):
        w = rng.integers(1, 4, n)
        owner = np.repeat(np.arange(n), w)
        for f, lr in ((0.02, 0.0), (0.1, 0.02), (0.02, 0.1)):
            def make(g, f=f, lr=lr):
                p = _beta(0.6, 1 / 3, n, g)[owner]
                base = g.random(len(owner)) < p
                u = g.random(len(owner))
                tuned = np.where(base, u >= f, u < lr)
                mean = lambda x: np.bincount(owner, x.astype(float), n) / w  # noqa: E731
                return mean(base), mean(tuned), {"weights": w}
            truth = 0.4 * lr - 0.6 * f
            out.append(_run_sets(make, sims, n_boot, truth, rng, case="weighted", n=int(w.sum()), p=0.6, f=f,
                                 l=lr, flips=w.sum() * (0.6 * f + 0.4 * lr)))
    return out


def mean_cells(sims: int, n_boot: int, rng) -> list[dict]:
    """Mean drop over 5 probes (sizes and rates differ), MOVER vs the replicate-wise bootstrap mean."""
    out = []
    for scale in (1, 4):
        sizes = [48 * scale, 96 * scale, 64 * scale, 200 * scale, 48 * scale]
        accs, fs, ls = [0.3, 0.5, 0.8, 0.6, 0.9], [0.02, 0.02, 0.1, 0.005, 0.02], [0.005, 0.0, 0.02, 0.005, 0.1]
        truth = -np.mean([(1 - p) * lr - p * f for p, f, lr in zip(accs, fs, ls)])  # the mean drop
        lo, hi, blo, bhi = [], [], [], []
        for _ in range(sims):
            ivs, reps = [], []
            for n, p, f, lr in zip(sizes, accs, fs, ls):
                base = rng.random(n) < p
                u = rng.random(n)
                tuned = np.where(base, u >= f, u < lr)
                ivs.append(paired_interval(base.astype(float), tuned.astype(float)).neg())
                reps.append(-paired_bootstrap(base.astype(float), tuned.astype(float), n_boot=n_boot, rng=rng).diff_reps)
            iv = mean_of(ivs)
            a, c = percentile_ci(np.mean(reps, axis=0))
            lo.append(iv.lo), hi.append(iv.hi), blo.append(a), bhi.append(c)
        row = _score(truth, *map(np.array, (lo, hi, blo, bhi)))
        out.append({"case": "mean of 5", "n": sum(sizes), "p": "mixed", "f": "mixed", "l": "mixed",
                    "flips": sum(n * (p * f + (1 - p) * lr) for n, p, f, lr in zip(sizes, accs, fs, ls)),
                    **row, "new_method": "mover(tango)"})
    return out


def _pct(x) -> str:
    return "-" if isinstance(x, str) else f"{100 * x:g}%"


def render(rows: list[dict], sims: int) -> str:
    head = ("case", "n", "base acc", "forget", "learn", "E[flips]", "bootstrap cov", "bootstrap width",
            "[0,0]", "new cov", "new cov (exact)", "new width", "method")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["case"], str(r["n"]), str(r["p"]), _pct(r["f"]), _pct(r["l"]), f"{r['flips']:.1f}",
            f"{100 * r['boot_cov']:.1f}", f"{100 * r['boot_width']:.2f}", f"{100 * r['boot_zero']:.0f}%",
            f"{100 * r['new_cov']:.1f}", f"{100 * r['exact']:.1f}" if "exact" in r else "-",
            f"{100 * r['new_width']:.2f}", r["new_method"]]) + " |")
    return "\n".join(lines)


def condensed(rows: list[dict]) -> str:
    """One line per case and size: the spread of coverage over its cells (exact where known), for the
    README."""
    cov = lambda r: r.get("exact", r["new_cov"])  # noqa: E731
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["case"], r["n"]), []).append(r)
    lines = ["| case | n | cells | bootstrap coverage min / median | cells with [0,0] CIs | new coverage min / median"
             " | width new / bootstrap (median) |", "|---|---|---|---|---|---|---|"]
    for (case, n), rs in groups.items():
        ratio = [r["new_width"] / r["boot_width"] for r in rs if r["boot_width"] > 0]
        lines.append(f"| {case} | {n} | {len(rs)} | {100 * min(r['boot_cov'] for r in rs):.1f} /"
                     f" {100 * float(np.median([r['boot_cov'] for r in rs])):.1f} | {sum(r['boot_zero'] > 0 for r in rs)} |"
                     f" {100 * min(map(cov, rs)):.1f} / {100 * float(np.median([cov(r) for r in rs])):.1f} |"
                     f" {float(np.median(ratio)) if ratio else float('nan'):.2f} |")
    return "\n".join(lines)


def summary(rows: list[dict], sims: int) -> str:
    cov = lambda r: r.get("exact", r["new_cov"])  # noqa: E731 - exact where it is known
    live = [r for r in rows if r["flips"] >= 0.5]  # cells with no flips expected cannot be below 100%
    inband = sum(0.93 <= cov(r) <= 0.975 for r in live)
    low = [r for r in rows if cov(r) < 0.93]
    high = [r for r in live if cov(r) > 0.975]
    boot_ok = [r for r in live if r["boot_cov"] >= 0.93 and r["boot_width"] > 0]
    ratio = [r["new_width"] / r["boot_width"] for r in boot_ok]
    se = 100 * np.sqrt(0.95 * 0.05 / sims)
    out = [f"{len(rows)} cells, {sims} simulations each (Monte Carlo SE of a 95% coverage: {se:.1f} points).",
           f"new methods (exact coverage where known, paired cells): min coverage {100 * min(map(cov, rows)):.1f}%;"
           f" {inband} of {len(live)} cells with >= 0.5 expected flips within 93-97.5%; {len(low)} cell(s) below 93%"
           + "".join(f" [{r['case']} n={r['n']} f={r['f']} l={r['l']}: {100 * cov(r):.1f}%]" for r in low)
           + f"; {len(high)} above 97.5%, all with <= {max((r['flips'] for r in high), default=0):.1f} expected flips;"
           f" zero-width intervals: {sum(r['new_zero'] > 0 for r in rows)} cells.",
           f"old bootstrap: min coverage {100 * min(r['boot_cov'] for r in rows):.1f}%;"
           f" {sum(r['boot_cov'] < 0.93 for r in rows)} cells below 93%;"
           f" cells with [0, 0] intervals: {sum(r['boot_zero'] > 0 for r in rows)}."]
    if ratio:
        wide = [r for r, x in zip(boot_ok, ratio) if x > 1.15]
        out.append(f"where the bootstrap covers (>= 93%, {len(ratio)} cells): new width / bootstrap width median"
                   f" {np.median(ratio):.2f}, range {min(ratio):.2f}-{max(ratio):.2f}; {len(ratio) - len(wide)} cells"
                   f" within 15%, the wider ones: {', '.join(sorted({r['case'] for r in wide}))} with <="
                   f" {max((r['flips'] for r in wide), default=0):.1f} expected flips.")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=1000, help="simulated data sets per cell (default 1000)")
    ap.add_argument("--boot", type=int, default=10000, help="bootstrap replicates (default 10000, as forgetbench used)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["paired", "clustered", "strata", "weighted", "mean"])
    ap.add_argument("--out", type=Path, help="also write the tables (markdown) to this file")
    args = ap.parse_args(argv)
    if args.sims < 1 or args.boot < 1:
        ap.error("--sims and --boot must be at least 1")
    rng = np.random.default_rng(args.seed)
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; python {platform.python_version()}, numpy {np.__version__}")
    t0 = time.perf_counter()
    rows = []
    for name, fn in (("paired", paired_cells), ("clustered", clustered_cells), ("strata", strata_cells),
                     ("weighted", weighted_cells), ("mean", mean_cells)):
        if args.only in (None, name):
            t = time.perf_counter()
            rows += fn(args.sims, args.boot, rng)
            print(f"{name}: {time.perf_counter() - t:.1f}s", file=sys.stderr)
    machine = f"{cpu_name()}, {os.cpu_count()} cores"
    text = "\n\n".join([render(rows, args.sims), condensed(rows), summary(rows, args.sims)])
    print(text)
    print(f"({time.perf_counter() - t0:.0f}s)")
    if args.out:
        args.out.write_text(f"# Interval coverage (benchmarks/coverage.py --sims {args.sims} --boot {args.boot}"
                            f" --seed {args.seed})\n\nMachine: {machine}.\n\n{text}\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
