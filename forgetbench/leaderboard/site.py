"""Render the leaderboard site from OUT/leaderboard.duckdb (tables written by forgetbench.leaderboard.build).

Safety model (every submission string is untrusted):
- jinja2 with autoescape=True for every template, and no submission value is ever marked safe (a value
  written straight into a page is escaped by markupsafe without being wrapped in Markup first:
  forgetbench.leaderboard.templating's `escaped_output`);
- the only Markup the site produces is `json_script` (in forgetbench.leaderboard.templating): JSON for
  <script type="application/json"> blocks, with <, >, & escaped as \\u003c.. so no string can close
  the script element or open a comment;
- hrefs are built only by `entry_href`, which refuses anything but a valid entry id;
- texts made in Python for the templates (an estimate's points and CI) are plain strings, escaped
  like everything else;
- pages carry a CSP (default-src 'self'; script-src 'self'; style-src 'self'): no inline script or
  style attribute exists anywhere, and the JS/CSS come from static/.
Templates can be overridden per file with --templates DIR (see leaderboard/README.md).
"""

from __future__ import annotations

import json
import math
import shutil
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from forgetbench.leaderboard import entry_pages
from forgetbench.leaderboard.plots import Point, drop_at_gain, matched_gain_level, pareto_frontier, scatter
from forgetbench.leaderboard.templating import assets_dir, entry_href, environment, texts
from forgetbench.runtime import forked
from forgetbench.runtime.hardware import cores
from forgetbench.stats.fit import line_fit

N_COLOURS = 10  # static/leaderboard.css defines .c0 .. .c9


def _named(spec: str | None) -> str | None:
    """A model spec that is a name (the bundled model), not a local path or a fake script."""
    return spec if spec and not any(c in spec for c in "/\\:") and len(spec) <= 60 else None


# ---- ranking ---------------------------------------------------------------------------------------

def tie_groups(values, los, his, higher_is_better: bool = True) -> list[int | None]:
    """Rank groups: walk entries best first; an entry whose CI overlaps the CI of the current group's
    leader (its best entry) shares the leader's group number, otherwise it leads a new group.
    Missing values get None."""
    idx = [i for i, v in enumerate(values) if v is not None and not math.isnan(v)]
    idx.sort(key=lambda i: (-values[i] if higher_is_better else values[i], i))
    out: list[int | None] = [None] * len(values)
    group, leader = 0, None
    for i in idx:
        if leader is None or not (los[i] <= his[leader] and los[leader] <= his[i]):
            group, leader = group + 1, i
        out[i] = group
    return out


# ---- context -----------------------------------------------------------------------------------------

def _records(con, sql: str) -> list[dict]:
    cur = con.execute(sql)  # plain tuples: 3x faster than going through a DataFrame here
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def _load(con) -> dict:
    """What the top-level pages show: every entry's summary, not its task rows and forgotten items
    (forgetbench.leaderboard.entry_pages reads those a range of entries at a time for the entry pages)."""
    entries = _records(con, "SELECT * FROM entries ORDER BY target, gain DESC NULLS LAST, entry_id")
    probe_drop = defaultdict(dict)  # the index's columns of the probes' primary rows (entry pages: all)
    for t in _records(con, "SELECT entry_id, task, delta, delta_lo, delta_hi FROM entry_tasks WHERE role = 'probe' AND sub = ''"):
        texts(t, "delta")
        probe_drop[t["entry_id"]][t["task"]] = t
    kl = {k["entry_id"]: k for k in _records(con, "SELECT * FROM entry_kl")}
    methods = sorted({e["method"] for e in entries})
    colour = {m: f"c{i % N_COLOURS}" for i, m in enumerate(methods)}
    probes = sorted({task for drops in probe_drop.values() for task in drops})
    for e in entries:
        e["badges"] = json.loads(e["badges"])
        e["warnings"] = json.loads(e["warnings"])
        e["hyperparameters"] = json.loads(e["hyperparameters"])
        e["versions"] = json.loads(e["versions"])
        e["settings"] = json.loads(e["settings"])
        e["colour"] = colour[e["method"]]
        e["base_label"] = e["base_hub_id"] or _named(e["base_spec"]) or e["base_hash"][:12]
        e["tuned_label"] = e["tuned_hub_id"] or e["tuned_hash"][:12]
        e["kl"] = kl.get(e["entry_id"])
        texts(e, "gain")
        texts(e, "mean_drop")
        e["probe_drop"] = probe_drop.get(e["entry_id"], {})
        e["probe_cells"] = [e["probe_drop"].get(p) for p in probes]  # the index's probe columns, in order
    by_target = defaultdict(list)
    for e in entries:  # entries using tasks outside the registry form their own groups, never ranked with it
        e["group"] = f"custom: {e['target']}" if e.get("custom") else e["target"]
        by_target[e["group"]].append(e)
    for group in by_target.values():  # ranks only compare entries on the same target
        for key, hib, name in (("gain", True, "gain_group"), ("mean_drop", False, "drop_group")):
            g = tie_groups([e[key] for e in group], [e[f"{key}_lo"] for e in group], [e[f"{key}_hi"] for e in group], hib)
            for e, v in zip(group, g):
                e[name] = v
    excluded = _records(con, "SELECT * FROM excluded ORDER BY folder")
    for x in excluded:
        x["errors"] = json.loads(x["errors"])
    return {"entries": entries, "by_target": dict(by_target), "methods": methods, "colour": colour,
            "probes": probes, "excluded": excluded}


def _pareto(ctx: dict) -> list[dict]:
    sections = []
    for target, group in sorted(ctx["by_target"].items()):
        pts_, fronts, lines, rows = [], {}, [], []
        for m in ctx["methods"]:
            es = [e for e in group if e["method"] == m and e["gain"] is not None and e["mean_drop"] is not None]
            if not es:
                continue
            gains, drops = [100 * e["gain"] for e in es], [100 * e["mean_drop"] for e in es]
            front = [(gains[i], drops[i]) for i in pareto_frontier(gains, drops)]
            fronts[m] = front
            lines.append((front, ctx["colour"][m], m, f"{m}: Pareto frontier"))
            pts_ += [Point(g, d, ctx["colour"][m], f"{e['title']} ({m}): gain {g:+.1f}, drop {d:+.1f}",
                           entry_href(e["entry_id"], "entries/"), m) for e, g, d in zip(es, gains, drops)]
        level = matched_gain_level(fronts)
        for m, f in fronts.items():
            rows.append({"method": m, "colour": ctx["colour"][m], "n": sum(e["method"] == m for e in group),
                         "n_front": len(f), "drop": None if level is None else drop_at_gain(f, level)})
        gmin = min((f[0][0] for f in fronts.values()), default=0.0)
        gmax = max((f[-1][0] for f in fronts.values()), default=0.0)
        sections.append({"target": target, "plot": scatter(pts_, lines=lines, xlabel=f"gain on {target} (points)",
                                                            ylabel="mean drop on probes (points)"),
                         "level": level, "rows": rows, "gmin": gmin, "gmax": gmax,
                         "fronts": {m: [[round(g, 4), round(d, 4)] for g, d in f] for m, f in fronts.items()}})
    return sections


def _r2_text(r2: float | None) -> str:
    return "n/a (every drop is equal)" if r2 is None else f"{r2:.3f}"


def _kl(ctx: dict) -> dict:
    es = [e for e in ctx["entries"] if e["kl"] and e["kl"]["fwd_seq"] is not None and e["mean_drop"] is not None]
    x, y = [e["kl"]["fwd_seq"] for e in es], [100 * e["mean_drop"] for e in es]
    fit = line_fit(x, y) if len(x) >= 3 else None  # a line through 2 points says nothing
    lines = []
    if fit:
        lo, hi = min(x), max(x)
        lines.append(([(lo, fit.slope * lo + fit.intercept), (hi, fit.slope * hi + fit.intercept)], "fit", "fit",
                      f"least squares: drop = {fit.slope:.2f} x KL {fit.intercept:+.2f}, R² = {_r2_text(fit.r2)}"))
    points = [Point(a, b, e["colour"], f"{e['title']} ({e['method']}, {e['target']}): KL {a:.3f} nats, drop {b:+.1f}",
                    entry_href(e["entry_id"]), e["method"]) for e, a, b in zip(es, x, y)]
    plot = scatter(points, lines=lines, xlabel="forward KL(π0 ‖ π) per sequence on the target (nats)",
                   ylabel="mean drop on probes (points)", xfmt="{:.2f}")
    return {"plot": plot, "fit": fit, "n": len(es)}


def _index(ctx: dict) -> dict:
    return {"entries": ctx["entries"], "probes": ctx["probes"], "excluded": ctx["excluded"],
            "bases": sorted({e["base_label"] for e in ctx["entries"]}), "methods": ctx["methods"],
            "targets": sorted(ctx["by_target"])}


def _pareto_page(ctx: dict) -> dict:
    return {"sections": _pareto(ctx)}


@dataclass(frozen=True)
class Page:
    """One top-level page of the site (entry pages are separate: one per entry, `entry.html`).

    `file` is the output file in --out and the `page` value its template sees; `context` turns the
    loaded tables (`_load`: entries, by_target, methods, colour, probes, excluded) into the template's
    variables; `nav` is its label in the navigation bar (None: not linked there)."""

    file: str
    template: str
    context: Callable[[dict], dict]
    nav: str | None = None


# The site's pages, in navigation order: `render` writes each, base.html links those with a label, and
# forgetbench.leaderboard.build counts their files as the build's own output (replaced on a rebuild).
PAGES: tuple[Page, ...] = (
    Page("index.html", "index.html", _index, "Leaderboard"),
    Page("pareto.html", "pareto.html", _pareto_page, "Gain vs drop"),
    Page("kl.html", "kl.html", _kl, "KL vs forgetting"),
)


# With many entries, write the pages in forked children (forgetbench.runtime.forked): forking costs ~0.1 s,
# which pays off from a few hundred pages.
PARALLEL_MIN_PAGES = 200


def render(con, out: Path, templates: Path | None = None) -> None:
    env = environment(templates)
    ctx = _load(con)
    legend = [{"method": m, "colour": ctx["colour"][m]} for m in ctx["methods"]]
    nav = [{"file": p.file, "label": p.nav} for p in PAGES if p.nav]
    common = {"legend_items": legend, "n_entries": len(ctx["entries"]), "nav": nav}
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(assets_dir() / "static", out / "static", dirs_exist_ok=True)
    if templates and (templates / "static").is_dir():
        shutil.copytree(templates / "static", out / "static", dirs_exist_ok=True)
    (out / "entries").mkdir(exist_ok=True)
    for name in {p.template for p in PAGES} | {"entry.html"}:
        env.get_template(name)  # compiled once, here: the children inherit them (and a syntax error is raised here)
    top = partial(_write_pages, env, ctx, common, out)
    n = min(cores(), 1 + len(ctx["entries"]) // PARALLEL_MIN_PAGES)
    forked.run([lambda: top, *entry_pages.makers(con, ctx["entries"], env, common, out)], n)


def _write_pages(env, ctx: dict, common: dict, out: Path) -> None:
    for p in PAGES:
        html = env.get_template(p.template).render(root="", page=p.file, **common, **p.context(ctx))
        (out / p.file).write_text(html, encoding="utf-8")
