"""The site's render spreads its pages over forked children (forgetbench.runtime.forked), a range of
entries per child, the top-level pages in one more: the files must be exactly those of the serial
render, and an error in a child (a template raising on one entry) must surface in the parent."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pytest

from forgetbench.leaderboard import entry_pages, site
from forgetbench.runtime import forked
from test_leaderboard import make_site  # the same folder: on sys.path (pytest rootdir)

FORK = hasattr(os, "fork")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _render(db: Path, out: Path, templates: Path | None = None) -> dict[str, bytes]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        site.render(con, out, templates=templates)
    finally:
        con.close()
    return _files(out)


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return make_site(tmp_path_factory.mktemp("forked")) / "leaderboard.duckdb"


@pytest.mark.skipif(not FORK, reason="no fork on this platform")
def test_forked_render_equals_the_serial_one(db, tmp_path, monkeypatch):
    monkeypatch.setattr(site, "PARALLEL_MIN_PAGES", 10**9)
    serial = _render(db, tmp_path / "serial")
    assert len([f for f in serial if f.startswith("entries/")]) == 4
    forks = []
    real_fork = forked._fork
    monkeypatch.setattr(forked, "_fork", lambda job: forks.append(1) or real_fork(job))
    monkeypatch.setattr(site, "PARALLEL_MIN_PAGES", 1)
    monkeypatch.setattr(entry_pages, "ENTRIES_PER_RANGE", 1)  # one child per entry, one for the top pages
    assert _render(db, tmp_path / "forked") == serial
    assert len(forks) == 5


@pytest.mark.skipif(not FORK, reason="no fork on this platform")
def test_an_error_in_a_child_is_raised_here(db, tmp_path, monkeypatch):
    """A child's exception ends the child only; the parent runs that job again and raises its error."""
    monkeypatch.setattr(site, "PARALLEL_MIN_PAGES", 1)
    monkeypatch.setattr(entry_pages, "ENTRIES_PER_RANGE", 1)
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    src = (site.assets_dir() / "templates" / "entry.html").read_text()
    (tpl / "entry.html").write_text(src.replace("{% block main %}", "{% block main %}{{ 1 // (e.entry_id != 'weak-rl') }}", 1))
    ran_here = []
    real_write = entry_pages.write
    monkeypatch.setattr(entry_pages, "write", lambda pages, *a: ran_here.append(os.getpid()) or real_write(pages, *a))
    with pytest.raises(ZeroDivisionError):
        _render(db, tmp_path / "out", templates=tpl)
    assert ran_here == [os.getpid()]  # only the failed job was run again in this process
    assert {p.name for p in (tmp_path / "out" / "entries").iterdir()} == {"strong-sft.html", "forgetful-sft.html", "noop-other.html"}


def test_jobs_run_in_order_here_without_fork(tmp_path, monkeypatch):
    done = []
    monkeypatch.delattr(os, "fork", raising=False)
    forked.run([lambda i=i: (lambda: done.append(i)) for i in range(3)], n=2)
    assert done == [0, 1, 2]


@pytest.mark.skipif(not FORK, reason="no fork on this platform")
def test_a_killed_child_is_redone_here(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()

    def job(i):
        def run():
            if i == 1 and os.getpid() != parent:
                os._exit(9)  # as if killed
            (marks / f"{i}-{'parent' if os.getpid() == parent else 'child'}").write_text("")
        return run

    parent = os.getpid()
    forked.run([lambda i=i: job(i) for i in range(3)], n=2)
    assert sorted(p.name for p in marks.iterdir()) == ["0-child", "1-parent", "2-child"]
    shutil.rmtree(marks)
