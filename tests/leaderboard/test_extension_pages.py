"""leaderboard/README.md's "Adding a page", followed: one `PAGES` entry (file, template, context
function, nav label) plus a template in a --templates folder. The build must render the page, link it
from every page's navigation (marked current on its own), and count its file as its own output."""

from __future__ import annotations

import pytest

from forgetbench.leaderboard import site
from forgetbench.leaderboard.build import build, out_files
from test_leaderboard import make_submissions  # the same folder: on sys.path (pytest rootdir)

METHODS_TEMPLATE = """{% extends "base.html" %}
{% block main %}
<ul class="methods">
{% for m, n in counts %}
<li>{{ m }}: {{ n }}</li>
{% endfor %}
</ul>
{% endblock %}
"""


def _methods(ctx: dict) -> dict:
    return {"counts": [(m, sum(e["method"] == m for e in ctx["entries"])) for m in ctx["methods"]]}


@pytest.fixture
def templates(tmp_path, monkeypatch):
    """The README's recipe: a template, and one entry in the registry (here for this test only)."""
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "methods.html").write_text(METHODS_TEMPLATE)
    (tpl / "hidden.html").write_text('{% extends "base.html" %}{% block main %}hidden page{% endblock %}')
    monkeypatch.setattr(site, "PAGES", (*site.PAGES, site.Page("methods.html", "methods.html", _methods, "Methods"),
                                        site.Page("hidden.html", "hidden.html", lambda ctx: {})))
    return tpl


def test_built_in_pages_are_the_registry():
    assert out_files() == ("index.html", "pareto.html", "kl.html", "leaderboard.duckdb")
    assert [p.nav for p in site.PAGES] == ["Leaderboard", "Gain vs drop", "KL vs forgetting"]


def test_a_registered_page_is_rendered_linked_and_owned(tmp_path, templates):
    subs = make_submissions(tmp_path)
    out = tmp_path / "site"
    build(subs, out, templates=templates)

    html = (out / "methods.html").read_text()
    assert "<li>other: 1</li>" in html and "<li>rl: 1</li>" in html and "<li>sft: 2</li>" in html
    assert '<a href="methods.html" aria-current="page">Methods</a>' in html
    for name in ("index.html", "pareto.html", "kl.html", "hidden.html"):
        assert '<a href="methods.html">Methods</a>' in (out / name).read_text(), name
    entry = (out / "entries" / "strong-sft.html").read_text()
    assert '<a href="../methods.html">Methods</a>' in entry
    # A page without a nav label is written but linked from nowhere.
    assert "hidden page" in (out / "hidden.html").read_text()
    assert all("hidden.html" not in p.read_text() for p in [*out.glob("*.html"), *out.glob("entries/*.html")])

    # The build owns the new files: a rebuild replaces them, a file of the user's beside them is kept.
    assert {"methods.html", "hidden.html"} <= set(out_files())
    (out / "methods.html").write_text("edited by hand")
    (out / "notes.txt").write_text("mine")
    build(subs, out, templates=templates)
    assert "<li>sft: 2</li>" in (out / "methods.html").read_text()
    assert (out / "notes.txt").read_text() == "mine"
