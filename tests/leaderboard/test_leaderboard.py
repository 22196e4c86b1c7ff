"""`forgetbench leaderboard build`: ingest, pages, numbers, tie groups, Pareto frontiers, and that
hostile submission strings render inert. Entries are generated with exactly chosen 0/1 scores and
their aggregates computed by forgetbench.stats.paired (benchmarks/leaderboard_build.py), so they pass
forgetbench.leaderboard.validate's recomputation and the default (validating) build is what is tested."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import duckdb
import pytest

from forgetbench.leaderboard.build import build
from forgetbench.leaderboard.site import tie_groups
from forgetbench.leaderboard.templating import entry_href, json_script
from forgetbench.leaderboard.plots import drop_at_gain, matched_gain_level, pareto_frontier
from support import load_benchmark

gen = load_benchmark("leaderboard_build")

N = 20
PROBES = {t: gen.suite_tasks(t) for t in ("lite_countdown", "lite_ifeval")}  # the whole lite suite


def right(k: int) -> list[int]:
    """20 scores, the first k right: with the same order on both sides, flips are exactly the gap."""
    return [1] * k + [0] * (N - k)


def entry(root: Path, entry_id: str, target: str, *, gain: tuple[int, int], probe: tuple[int, int], kl: float,
          response=None, prompt=None, **meta) -> None:
    probes = PROBES[target]
    p_base = {target: right(gain[0]), **{p: right(probe[0]) for p in probes}}
    p_tuned = {target: right(gain[1]), **{p: right(probe[1]) for p in probes}}
    res = gen.results_for(entry_id, target, probes, p_base, p_tuned, n_items=N, kl_scale=kl,
                          response=response, prompt=prompt)
    gen.write_entry(root, entry_id, res, **meta)


def make_submissions(root: Path) -> Path:
    subs = root / "submissions"
    entry(subs, "strong-sft", "lite_countdown", gain=(4, 16), probe=(15, 14), kl=0.5, title="Strong SFT")
    entry(subs, "weak-rl", "lite_countdown", gain=(4, 14), probe=(15, 15), kl=0.1, title="Weak RL", method="rl")
    entry(subs, "forgetful-sft", "lite_ifeval", gain=(4, 16), probe=(18, 6), kl=2.0, title="Forgetful SFT")
    entry(subs, "noop-other", "lite_ifeval", gain=(8, 8), probe=(12, 12), kl=0.01, title="Noop other",
          method="other", reference=True)
    sha = hashlib.sha256((subs / "noop-other" / "results.json").read_bytes()).hexdigest()
    (subs / "reference.yaml").write_text(f"- id: noop-other\n  sha256: {sha}\n")  # the maintainers' list
    return subs


def make_site(root: Path) -> Path:
    res = build(make_submissions(root), root / "site")
    assert (res.n_entries, res.n_excluded) == (4, 0)
    return root / "site"


def rows(html: str) -> list[str]:
    return re.findall(r'<td class="entry"><a href="entries/([^"]+)\.html">', html)


def test_build_pages_numbers_and_db(tmp_path):
    site = make_site(tmp_path)
    index = (site / "index.html").read_text()
    # Default order: target, then gain descending.
    assert rows(index) == ["strong-sft", "weak-rl", "forgetful-sft", "noop-other"]
    for eid in ("strong-sft", "weak-rl", "forgetful-sft", "noop-other"):
        assert (site / "entries" / f"{eid}.html").is_file()
    for f in ("pareto.html", "kl.html", "static/leaderboard.js", "static/leaderboard.css"):
        assert (site / f).is_file()
    # Points, one decimal, signed deltas: gain 12/20 = +60.0, mean drop of forgetful = 12/20 = +60.0.
    assert '<span class="v">+60.0</span>' in index
    con = duckdb.connect(str(site / "leaderboard.duckdb"), read_only=True)
    got = dict(con.execute("SELECT entry_id, round(gain, 4) FROM entries").fetchall())
    assert got == {"strong-sft": 0.6, "weak-rl": 0.5, "forgetful-sft": 0.6, "noop-other": 0.0}
    md = dict(con.execute("SELECT entry_id, round(mean_drop, 4) FROM entries").fetchall())
    assert md == {"strong-sft": 0.05, "weak-rl": 0.0, "forgetful-sft": 0.6, "noop-other": 0.0}
    assert con.execute("SELECT count(*) FROM entry_tasks WHERE sub = ''").fetchone()[0] == 20
    assert con.execute("SELECT count(*) FROM entry_kl").fetchone()[0] == 4
    # Forgotten items: forgetful-sft forgot 12 items on each of 4 probes; all stored (cap 50).
    assert con.execute("SELECT count(*) FROM entry_forgotten WHERE entry_id='forgetful-sft'").fetchone()[0] == 48
    badges = dict(con.execute("SELECT entry_id, badges FROM entries").fetchall())
    assert "reference" in json.loads(badges["noop-other"]) and "self-reported" in json.loads(badges["weak-rl"])
    page = (site / "entries" / "forgetful-sft.html").read_text()
    assert "lite_arith: 12 forgotten" in page and page.count('<div class="item">') == 48
    assert "[base] The answer is" in page and "[tuned] The answer is" in page
    assert (site / "kl.html").read_text().count('<circle class="pt') == 4


def test_tie_groups_in_site(tmp_path):
    site = make_site(tmp_path)
    con = duckdb.connect(str(site / "leaderboard.duckdb"), read_only=True)
    ci = {r[0]: r[1:] for r in con.execute("SELECT entry_id, gain_lo, gain_hi FROM entries").fetchall()}
    # The construction: strong (+60) and weak (+50) overlap; noop is exactly 0, and having no flip its
    # interval still says how large a change 20 items could hide (never [0, 0]).
    assert ci["weak-rl"][1] >= ci["strong-sft"][0] and ci["noop-other"][0] < 0 < ci["noop-other"][1]
    methods = dict(con.execute("SELECT entry_id, gain_method FROM entries").fetchall())
    assert methods["noop-other"] == "tango" and set(methods.values()) == {"tango"}
    index = (site / "index.html").read_text()
    gain_groups = {eid: int(g) for g, eid in re.findall(
        r'<tr data-base[^>]*>\s*<td class="num" data-v="(\d+)">.*?href="entries/([^"]+)\.html"', index, re.S)}
    assert gain_groups == {"strong-sft": 1, "weak-rl": 1, "forgetful-sft": 1, "noop-other": 2}


def test_tie_groups_constructed():
    # value, lo, hi; higher is better. a leads; b overlaps a; c overlaps b but not a -> new group led by c;
    # d overlaps c; e is missing.
    v = [0.9, 0.8, 0.6, 0.55, None]
    lo = [0.8, 0.7, 0.5, 0.45, None]
    hi = [1.0, 0.85, 0.75, 0.65, None]
    assert tie_groups(v, lo, hi) == [1, 1, 2, 2, None]
    # Lower is better (mean drop): d leads, c joins it; b does not overlap d and leads group 2, a joins b.
    assert tie_groups(v, lo, hi, higher_is_better=False) == [2, 2, 1, 1, None]


def test_pareto_frontier_and_matched_gain():
    gains = [10, 20, 30, 25, 30, 5, 20]
    drops = [1, 3, 8, 2, 9, 0, 3]
    front = pareto_frontier(gains, drops)
    # (30, 9) is dominated by (30, 8); (20, 3) by (25, 2); the duplicate (20, 3) too; (5, 0) is on it.
    assert front == [5, 0, 3, 2]
    pts = [(gains[i], drops[i]) for i in front]
    assert drop_at_gain(pts, 27.5) == pytest.approx(5.0)  # halfway between (25, 2) and (30, 8)
    assert drop_at_gain(pts, 1) == 0  # below the frontier: its first point already reaches it
    assert drop_at_gain(pts, 31) is None
    assert matched_gain_level({"a": pts, "b": [(12, 4), (18, 6)]}) == 18


def test_pareto_page(tmp_path):
    html = (make_site(tmp_path) / "pareto.html").read_text()
    assert html.count('<polyline class="line') == 4  # one frontier per (target, method): 2 + 2
    fronts = [json.loads(m) for m in re.findall(r'<script type="application/json" class="fronts">(.*?)</script>', html)]
    assert fronts[0] == {"rl": [[50.0, 0.0]], "sft": [[60.0, 5.0]]}


PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</script><script>alert(1)</script>",
            "<!--", "javascript:alert(1)"]


def test_hostile_strings_render_inert(tmp_path):
    subs = make_submissions(tmp_path)
    p = " | ".join(PAYLOADS)
    entry(subs, "xss-entry", "lite_countdown", gain=(4, 16), probe=(18, 6), kl=1.0, title=p, contact=p,
          training_data=p, compute=p, notes=p, hyperparameters={PAYLOADS[0]: PAYLOADS[1], PAYLOADS[2]: 1},
          base={"hub_id": None, "revision": PAYLOADS[1], "content_hash": gen._h("xss-entry", "base")},
          response=lambda task, i, side: f"{side}: {p}", prompt=lambda task, i: f"prompt {i} {p}")
    bad_id = '"><img src=x onerror=alert(1)>'
    entry(subs, bad_id, "lite_ifeval", gain=(4, 10), probe=(10, 10), kl=1.0, title=p)
    res = build(subs, tmp_path / "site")
    assert (res.n_entries, res.n_excluded) == (5, 1)
    site = tmp_path / "site"
    page = (site / "entries" / "xss-entry.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # rendered, as text
    assert page.count("prompt 6 ") == 4 and "tuned: " in page  # the forgotten hostile items (6..17) are listed
    files = [f for f in site.rglob("*") if f.is_file() and f.suffix in (".html", ".js", ".css", ".svg")]
    assert len(files) >= 10
    for f in files:
        text = f.read_text()
        for payload in PAYLOADS[:4]:
            assert payload not in text, (f, payload)
        assert "<img" not in text and "onerror=alert" not in text.replace("onerror=alert(1)&gt;", "")
        assert not re.search(r'(href|src)\s*=\s*"\s*javascript:', text, re.I)
        assert "<script>" not in text  # only <script src=...> and <script type="application/json">
    index = (site / "index.html").read_text()
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in index  # the rejected folder, listed as text
    assert not any(bad_id in f.name for f in site.rglob("*"))


def test_json_script_and_href_guards():
    s = str(json_script({"k": "</script><script>alert(1)</script><!-- & \u2028"}))
    assert "<" not in s and ">" not in s and "&" not in s and "\u2028" not in s
    assert json.loads(s) == {"k": "</script><script>alert(1)</script><!-- & \u2028"}
    assert entry_href("ok-id.v2") == "entries/ok-id.v2.html"
    for bad in ("javascript:alert(1)", "../x", "a", 'x"><img', "UPPER"):
        with pytest.raises(ValueError):
            entry_href(bad)


def test_templates_override(tmp_path):
    subs = make_submissions(tmp_path)
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "kl.html").write_text('{% extends "base.html" %}{% block main %}custom {{ n }} {{ fit.n }}{% endblock %}')
    build(subs, tmp_path / "site", templates=tpl)
    assert "custom 4 4" in (tmp_path / "site" / "kl.html").read_text()
    assert 'class="board"' in (tmp_path / "site" / "index.html").read_text()  # others stay built in
