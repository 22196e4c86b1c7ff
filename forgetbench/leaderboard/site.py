"""Render the leaderboard site from OUT/leaderboard.duckdb (tables written by forgetbench.leaderboard.build).

Safety model (every submission string is untrusted):
- jinja2 with autoescape=True for every template, and no submission value is ever marked safe;
- the only Markup produced here is `json_script`: JSON for <script type="application/json"> blocks,
  with <, >, & escaped as \\u003c.. so no string can close the script element or open a comment;
- hrefs are built only by `entry_href`, which refuses anything but a valid entry id;
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
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from forgetbench.runtime.fanout import chunked_map
from forgetbench.leaderboard.submission import FORGOTTEN_CAP, valid_id
from forgetbench.eval.report import p_text
from forgetbench.leaderboard.plots import Point, drop_at_gain, matched_gain_level, pareto_frontier, scatter
from forgetbench.stats.fit import line_fit
from forgetbench.paths import shipped

N_COLOURS = 10  # static/leaderboard.css defines .c0 .. .c9


def _named(spec: str | None) -> str | None:
    """A model spec that is a name (the bundled model), not a local path or a fake script."""
    return spec if spec and not any(c in spec for c in "/\\:") and len(spec) <= 60 else None


def assets_dir() -> Path:
    """leaderboard/ of a checkout, or the copy a wheel carries inside the package."""
    found = shipped("leaderboard", "templates")
    if found is not None:
        return found
    raise FileNotFoundError("cannot find the leaderboard templates (leaderboard/templates)")


# ---- filters ---------------------------------------------------------------------------------------

def pts(x, signed: bool = False) -> str:
    """A fraction as points (x100, one decimal), the unit of every score on the site."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    v = round(100 * x, 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{v:+.1f}" if signed else f"{v:.1f}"


def ci(lo, hi, signed: bool = True) -> str:
    if lo is None or hi is None:
        return ""
    return f"[{pts(lo, signed)}, {pts(hi, signed)}]"


def entry_href(entry_id: str, prefix: str = "entries/") -> str:
    if not valid_id(entry_id):
        raise ValueError(f"refusing to link to an invalid entry id {entry_id!r}")
    return f"{prefix}{entry_id}.html"


def json_script(data) -> Markup:
    """JSON safe inside <script type="application/json">: nothing in it can end the element."""
    s = json.dumps(data, ensure_ascii=False, allow_nan=False)
    s = s.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    s = s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(s)


_DICT_ATTRS = frozenset(dir(dict))


class _Environment(Environment):
    """jinja's lookup with a shortcut for plain dicts: the templates read rows (dicts) as `e.title`,
    and the default tries getattr first, raising and catching an AttributeError for every such
    lookup (a third of an entry page's render time). Same results: a name that is a dict attribute
    (`.get`, `.items`) still goes the default way; for any other name getattr on a dict fails anyway."""

    def getattr(self, obj, attribute):
        if type(obj) is dict and attribute not in _DICT_ATTRS:
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)


def environment(templates: Path | None = None) -> Environment:
    loaders = [FileSystemLoader(str(templates))] if templates else []
    loaders.append(FileSystemLoader(str(assets_dir() / "templates")))
    env = _Environment(loader=ChoiceLoader(loaders), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pts=pts, entry_href=entry_href, json_script=json_script, pvalue=p_text)
    env.globals.update(ci=ci, forgotten_cap=FORGOTTEN_CAP)
    return env


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
    entries = _records(con, "SELECT * FROM entries ORDER BY target, gain DESC NULLS LAST, entry_id")
    by_entry = defaultdict(lambda: {"tasks": [], "forgotten": defaultdict(list)})
    for t in _records(con, "SELECT * FROM entry_tasks ORDER BY entry_id, role DESC, task, sub"):
        by_entry[t["entry_id"]]["tasks"].append(t)
    for f in _records(con, "SELECT * FROM entry_forgotten ORDER BY entry_id, task, pos"):
        by_entry[f["entry_id"]]["forgotten"][f["task"]].append(f)
    kl = {k["entry_id"]: k for k in _records(con, "SELECT * FROM entry_kl")}
    methods = sorted({e["method"] for e in entries})
    colour = {m: f"c{i % N_COLOURS}" for i, m in enumerate(methods)}
    probes = sorted({t["task"] for t in _records(con, "SELECT DISTINCT task FROM entry_tasks WHERE role='probe' AND sub=''")})
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
        e.update(by_entry[e["entry_id"]])
        e["probe_drop"] = {t["task"]: t for t in e["tasks"] if t["role"] == "probe" and not t["sub"]}
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
    for p in PAGES:
        html = env.get_template(p.template).render(root="", page=p.file, **common, **p.context(ctx))
        (out / p.file).write_text(html, encoding="utf-8")
    (out / "entries").mkdir(exist_ok=True)
    _entry_pages(templates, ctx["entries"], common, out, env)


# Entry pages are independent: with many of them, split over the available cores (a pool costs
# ~0.1 s to start, which pays off from a few hundred pages).
PARALLEL_MIN_PAGES = 200
_PAGES_PER_TASK = 50


def _entry_pages(templates: Path | None, entries: list[dict], common: dict, out: Path, env=None) -> None:
    chunked_map(_write_entry_pages, entries, templates, common, out, min_per_worker=PARALLEL_MIN_PAGES,
                chunk=_PAGES_PER_TASK, serial=lambda es, *args: _write_entry_pages(es, *args, env=env))


_WORKER_ENVS: dict = {}  # per worker process: compile the templates once, not once per chunk


def _write_entry_pages(entries: list[dict], templates: Path | None, common: dict, out: Path, env=None) -> None:
    if env is None:
        env = _WORKER_ENVS.get(templates) or _WORKER_ENVS.setdefault(templates, environment(templates))
    tpl = env.get_template("entry.html")
    for e in entries:
        html = tpl.render(root="../", page="entry", e=e, **common)
        (out / entry_href(e["entry_id"])).write_text(html, encoding="utf-8")
