"""Entry pages (entries/<id>.html, template entry.html): one per entry, each with the entry's per-task
rows and forgotten items, which are most of the site's data.

They are read from the DuckDB file a range of entries at a time (ids in DuckDB's own order, one query
per table and range) and each range's pages are written by a forked child (forgetbench.runtime.forked)
that inherits the rows read for it: nothing is pickled, and the build never holds every entry's
forgotten rows at once, only those of the ranges being written. The children cannot read the file
themselves: the build keeps its connection open for writing, and DuckDB locks the file against every
other process meanwhile.

Simplifications: pages are written in the order of the entry ids (each is its own file, so nothing
depends on it); a range is one job, whatever its pages' sizes.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from pathlib import Path

from forgetbench.leaderboard.templating import entry_href, texts

ENTRIES_PER_RANGE = 500  # entries per read and per job: bounds what this process holds at once

# The order of an entry's rows on its page (the per-task table; the forgotten items of each task).
TASK_ORDER = "role DESC, task, sub"
FORGOTTEN_ORDER = "task, pos"


def makers(con, entries: list[dict], env, common: dict, out: Path) -> list:
    """One maker per range of entries (forgetbench.runtime.forked): it reads the range's rows and
    returns the job writing their pages with `env`. `entries` are the summaries (site's `_load`)."""
    by_id = {e["entry_id"]: e for e in entries}
    ids = [r[0] for r in con.execute("SELECT entry_id FROM entries ORDER BY entry_id").fetchall()]
    return [partial(_job, con, ids[i:i + ENTRIES_PER_RANGE], by_id, env, common, out)
            for i in range(0, len(ids), ENTRIES_PER_RANGE)]


def _job(con, ids: list[str], by_id: dict, env, common: dict, out: Path):
    # BETWEEN the range's first and last id (DuckDB's order, the same as `ids`): the rows of exactly
    # these entries, found by the row groups' min/max when the table is stored in id order (as
    # forgetbench.leaderboard.build writes it), by a scan otherwise.
    tcols, tasks = _rows(con, "entry_tasks", TASK_ORDER, ids[0], ids[-1])
    fcols, forgotten = _rows(con, "entry_forgotten", FORGOTTEN_ORDER, ids[0], ids[-1])
    pages = [(by_id[x], tasks.pop(x, []), forgotten.pop(x, [])) for x in ids]
    return partial(write, pages, tcols, fcols, env, common, out)


def _rows(con, table: str, order: str, lo: str, hi: str) -> tuple[list[str], dict[str, list[tuple]]]:
    cur = con.execute(f"SELECT * FROM {table} WHERE entry_id BETWEEN ? AND ? ORDER BY entry_id, {order}", [lo, hi])
    cols = [d[0] for d in cur.description]
    by_entry = defaultdict(list)
    for row in cur.fetchall():
        by_entry[row[0]].append(row)
    return cols, by_entry


def page_entry(entry: dict, tcols: list[str], task_rows: list[tuple], fcols: list[str], forgotten_rows: list[tuple]) -> dict:
    """The `e` of entry.html: the entry's summary plus `tasks` (rows of entry_tasks, with the texts of
    their estimates), `probe_drop` (task -> its primary row, probes only) and `forgotten` (task -> rows
    of entry_forgotten)."""
    tasks = []
    for row in task_rows:
        t = dict(zip(tcols, row))
        texts(t, "base", False)
        texts(t, "tuned", False)
        texts(t, "delta")
        tasks.append(t)
    forgotten = defaultdict(list)
    for row in forgotten_rows:
        f = dict(zip(fcols, row))
        forgotten[f["task"]].append(f)
    return {**entry, "tasks": tasks, "forgotten": forgotten,
            "probe_drop": {t["task"]: t for t in tasks if t["role"] == "probe" and not t["sub"]}}


def write(pages: list[tuple], tcols: list[str], fcols: list[str], env, common: dict, out: Path) -> None:
    """Write the pages of (summary, task rows, forgotten rows) into out/entries/."""
    tpl = env.get_template("entry.html")
    for entry, task_rows, forgotten_rows in pages:
        e = page_entry(entry, tcols, task_rows, fcols, forgotten_rows)
        html = tpl.render(root="../", page="entry", e=e, **common)
        (out / entry_href(e["entry_id"])).write_text(html, encoding="utf-8")
