"""`forgetbench leaderboard build`: submissions/ -> OUT/leaderboard.duckdb -> static site in OUT.

Stages: list entry folders -> validate them (forgetbench.leaderboard.validate: schema, recomputed aggregates,
badges) -> parse the OK/STALE ones -> ingest everything into a fresh DuckDB file -> render the site
from queries on that file (forgetbench.leaderboard.site). INVALID entries are not ingested as results; they are
listed with their errors on the index page so a submitter can see why an entry is missing.

Every string in a submission is untrusted. This module only makes sure of two things: entry ids
(which become file names and hrefs) match submission.ENTRY_ID, and every value has the type the tables
expect, so a malformed file cannot crash the build for everybody. Escaping is the renderer's job.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from forgetbench.errors import UserError
from forgetbench.leaderboard import tables
from forgetbench.leaderboard.submission import valid_id

DB_FILE = "leaderboard.duckdb"
OUT_DIRS = ("entries", "static")


@dataclass
class Entry:
    entry_id: str
    path: Path
    status: str  # OK | STALE | INVALID
    badges: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    sha256: str = ""
    rows: tuple | None = None  # table_rows, made by the validator's workers (validate=True: results stays {})


@dataclass
class BuildResult:
    out: Path
    n_entries: int
    n_excluded: int
    timings: dict[str, float]  # seconds per stage


# ---- validation -------------------------------------------------------------------------------------

def _from_report(e: Entry, rep) -> None:
    """Fill `e` from a forgetbench.leaderboard.validate.EntryReport (which carries the metadata and, as its digest,
    the entry's table_rows)."""
    e.status = str(rep.status).upper()
    e.badges = tuple(str(b) for b in rep.badges)
    e.errors = tuple(str(p) for p in rep.errors)
    e.warnings = tuple(str(p) for p in getattr(rep, "warnings", ()))
    if e.status != "INVALID":
        if rep.metadata is None or (rep.results is None and rep.digest is None):
            e.status, e.errors = "INVALID", (*e.errors, "validator returned no parsed files")
        else:
            e.meta, e.results, e.rows, e.sha256 = rep.metadata, rep.results or {}, rep.digest, rep.results_sha256 or ""


# ---- parsing (the table rows themselves: forgetbench.leaderboard.tables) -----------------------------------


def _load(path: Path) -> tuple[dict, dict, str]:
    """metadata.yaml, results.json (hostile-safe parsing: size caps, no YAML aliases, finite numbers)
    and the sha256 of results.json."""
    from forgetbench.leaderboard import submission as sub
    from forgetbench.leaderboard.strictjson import parse_json

    meta = sub.parse_yaml(sub.read_capped(path / sub.METADATA_FILE, sub.MAX_METADATA_BYTES))
    raw = sub.read_capped(path / sub.RESULTS_FILE, sub.MAX_RESULTS_BYTES)
    results = parse_json(raw)
    if not isinstance(meta, dict) or not isinstance(results, dict):
        raise ValueError("metadata.yaml and results.json must each hold a mapping")
    return meta, results, hashlib.sha256(raw).hexdigest()


def _import_later_stages() -> None:
    """Import what ingest and render need (~1 s: duckdb, pyarrow, jinja2; and pandas, which DuckDB
    imports at its first scan of a Python object) while validation runs in worker processes, instead
    of after it."""
    import duckdb  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401

    from forgetbench.leaderboard import site  # noqa: F401


def _schema_problems(meta: dict, results: dict) -> list[str]:
    """Structural checks only (no registry, no bootstrap): the `validate=False` path."""
    from forgetbench.leaderboard.schema import check_metadata, check_results

    return [str(p) for p in (*check_metadata(meta), *check_results(results))]


def _basic_badges(meta: dict) -> tuple[str, ...]:
    # validate=False only: "verified" and "reference" come from the maintainers' lists, which are
    # forgetbench.leaderboard.validate's (and forgetbench.leaderboard.trust's) business, never from the entry itself.
    return ("self-reported",)


def entry_folders(submissions: Path) -> list[Path]:
    """The entry folders of a submissions root, in name order."""
    if not submissions.is_dir():
        raise UserError(f"--submissions {submissions} is not a directory")
    with os.scandir(submissions) as it:  # names sorted, not Paths (a build lists 10,000 of them)
        names = sorted(c.name for c in it if c.is_dir() and not c.name.startswith("."))
    return [submissions / name for name in names]


class Streamed:
    """validate_entries(receive=...): an entry's per-task, KL and forgotten-item rows go into the tables
    (through a tables.Writer) as soon as its chunk comes back from a worker; only its entries row, which
    waits for the verdict of the cross-entry checks, is kept. `ids`: the entries whose rows were stored
    (write_entries deletes those of the ones that end up INVALID)."""

    def __init__(self, writer: tables.Writer):
        self.writer, self.ids = writer, set()

    def __call__(self, digest):
        kind, rows = digest
        if kind != "ok":
            return digest
        entry, *rest = rows
        self.writer.add_parts(rest)
        self.ids.add(entry["entry_id"])
        return kind, (entry, (), (), ())


def collect(submissions: Path, *, validate: bool = True, paths: list[Path] | None = None,
            stream: Streamed | None = None) -> tuple[list[Entry], dict[str, float]]:
    """Every entry folder under `submissions` (or `paths`, its entry_folders), validated and parsed;
    timings of both stages.

    validate=True (always, except in benchmarks): forgetbench.leaderboard.validate's full check, including the
    recomputation of every aggregate. validate=False: safe parsing and schema checks only. With
    `stream` (validate=True only), the bulky table rows are stored while the validation runs."""
    paths = entry_folders(submissions) if paths is None else paths
    entries = [Entry(entry_id=p.name, path=p, status="OK") for p in paths]
    t0 = time.perf_counter()
    if validate:
        from forgetbench.leaderboard.validate import validate_entries

        # The table rows are made where each entry is checked (in parallel), and only they come back:
        # 10,000 parsed results.json would not fit in memory (~220 KB each), nor do their rows (~12 KB).
        digest = partial(tables.table_rows, hib=tables.higher_is_better(), builtin=tables.builtin_tasks())
        reports = validate_entries(paths, root=submissions, while_waiting=_import_later_stages, digest=digest,
                                   receive=stream)
        for e, rep in zip(entries, reports, strict=True):
            _from_report(e, rep)
    else:
        from forgetbench.leaderboard.submission import Invalid

        hib, builtin = tables.higher_is_better(), tables.builtin_tasks()
        for e in entries:
            try:
                e.meta, e.results, e.sha256 = _load(e.path)
            except (Invalid, OSError, ValueError) as err:
                e.status, e.errors = "INVALID", (f"cannot read entry: {err}",)
                continue
            problems = _schema_problems(e.meta, e.results)
            if problems:
                e.status, e.errors = "INVALID", tuple(problems)
            else:  # the table rows now, the parsed file dropped: 10,000 of them would not fit in memory
                e.rows = tables.table_rows(e.entry_id, e.meta, e.results, e.sha256, hib, builtin)
                e.results = {}
            e.badges = _basic_badges(e.meta)
    t1 = time.perf_counter()
    for e in entries:  # ids become file names and hrefs: enforced here whatever the validator said
        if e.status != "INVALID" and not (valid_id(e.path.name) and e.meta.get("id") == e.path.name):
            e.status, e.errors = "INVALID", (*e.errors, "folder name must be a valid entry id equal to metadata id")
    return entries, {"validate" if validate else "parse": t1 - t0}


# ---- ingest -------------------------------------------------------------------------------------------


def open_db(db_path: Path):
    """A fresh DuckDB file at `db_path` with the empty tables (tables.COLUMNS); returns the connection."""
    from forgetbench.runtime.dbfile import connect

    db_path.unlink(missing_ok=True)
    con = connect(db_path)
    try:
        tables.create(con)
    except BaseException:
        con.close()
        raise
    return con


def ingest(db_path: Path, entries: list[Entry]):
    """A fresh DuckDB file with one table per entry aspect (schema in tables.COLUMNS); returns the connection."""
    writer = tables.Writer(partial(open_db, db_path))
    try:
        write_entries(writer, entries)
    except BaseException:
        writer.close()
        raise
    return writer.con


def write_entries(writer: tables.Writer, entries: list[Entry], stream: Streamed | None = None) -> None:
    """The entries and excluded tables, and the rows of every other table not yet stored by `stream`
    (collect's): those of entries that ended INVALID after they were stored (the cross-entry checks,
    the id check) are deleted again, so the tables hold exactly the rows of the valid entries."""
    hib, builtin = tables.higher_is_better(), tables.builtin_tasks()
    kept = set()
    for e in entries:
        if e.status != "INVALID":
            kind, rows = e.rows or tables.table_rows(e.entry_id, e.meta, e.results, e.sha256, hib, builtin)
            e.rows = None  # each entry's rows live only in the tables from here
            if kind == "error":
                e.status, e.errors = "INVALID", (*e.errors, f"cannot ingest: {rows}")
            else:
                entry, *rest = rows
                writer.add("entries", [_with_verdict(entry, e)])
                writer.add_parts(rest)
                kept.add(e.entry_id)
                continue
        writer.add("excluded", [(tables.printable(e.path.name), json.dumps([tables.printable(x) for x in e.errors]))])
    writer.flush()
    dropped = sorted(stream.ids - kept) if stream is not None else []
    for table in tables.ENTRY_PARTS if dropped else ():
        writer.con.execute(f"DELETE FROM {table} WHERE list_contains(?, entry_id)", [dropped])


# ---- orchestration ----------------------------------------------------------------------------------------

def _check_out(out: Path, submissions: Path) -> Path:
    out, subs = out.resolve(), submissions.resolve()
    if out == subs or subs in out.parents:
        raise UserError(f"--out {out} must not be inside the submissions folder")
    if out in subs.parents:
        raise UserError(f"--out {out} must not contain the submissions folder {subs}")
    return out


def out_files() -> tuple[str, ...]:
    """The files a build writes at the top of --out: one per page of forgetbench.leaderboard.site.PAGES
    (the registry its render and navigation read too) and the DuckDB file."""
    from forgetbench.leaderboard.site import PAGES

    return (*(p.file for p in PAGES), DB_FILE)


def _owned(name: str) -> bool:
    """What a build writes into --out (everything else there is the user's and is kept)."""
    return name in out_files() or name in OUT_DIRS


def build(submissions: Path, out: Path, *, templates: Path | None = None, validate: bool = True) -> BuildResult:
    """Validate, ingest and render. `validate=False` (benchmarks only) skips forgetbench.leaderboard.validate.

    The site is written into a new folder next to `out` and swapped in only when complete
    (forgetbench.leaderboard.staging): a failed build leaves the previous site as it was."""
    from forgetbench.leaderboard import site
    from forgetbench.leaderboard.staging import staged

    t0 = time.perf_counter()
    out = _check_out(out, submissions)
    paths = entry_folders(submissions)
    with staged(out, _owned) as new:
        # The entries' table rows go into the DuckDB file as they are made (collect's `stream`), so they
        # are never all in memory at once.
        writer = tables.Writer(partial(open_db, new / DB_FILE))
        try:
            n_ok, n_excluded, timings = _collect_and_ingest(writer, submissions, paths, validate)
            t2 = time.perf_counter()
            site.render(writer.con, new, templates=templates)
        finally:
            writer.close()
    t3 = time.perf_counter()
    timings.update({"render": t3 - t2, "total": t3 - t0})
    return BuildResult(out=out, n_entries=n_ok, n_excluded=n_excluded, timings=timings)


def _collect_and_ingest(writer: tables.Writer, submissions: Path, paths: list[Path], validate: bool):
    """(valid entries, excluded entries, timings): collect and write_entries. Nothing of the entries
    outlives this call: the render that follows reads them back from the tables (~200 MB for 10,000)."""
    stream = Streamed(writer) if validate else None
    entries, timings = collect(submissions, validate=validate, paths=paths, stream=stream)
    t1 = time.perf_counter()
    write_entries(writer, entries, stream)
    timings["ingest"] = time.perf_counter() - t1
    n_ok = sum(e.status != "INVALID" for e in entries)
    return n_ok, len(entries) - n_ok, timings


def cli_build(submissions: Path, out: Path, templates: Path | None = None) -> int:
    """Entry point of `forgetbench leaderboard build`."""
    if templates is not None and not templates.is_dir():
        raise UserError(f"--templates {templates} is not a directory")
    res = build(submissions, out, templates=templates)
    t = res.timings
    print(f"leaderboard: {res.n_entries} entries, {res.n_excluded} excluded -> {res.out / 'index.html'}")
    print("  " + ", ".join(f"{k} {v:.2f}s" for k, v in t.items()))
    return 0


def _with_verdict(entry: dict, e: Entry) -> tuple:
    entry = {**entry, "status": e.status, "badges": json.dumps(list(e.badges)),
             "warnings": json.dumps([tables.printable(w) for w in e.warnings]), "reference": "reference" in e.badges}
    return tuple(entry[c] for c in tables.NAMES["entries"])
