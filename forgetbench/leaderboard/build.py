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
import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from forgetbench.errors import UserError
from forgetbench.leaderboard.submission import FORGOTTEN_CAP, valid_id

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


# ---- parsing ------------------------------------------------------------------------------------------

def _num(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"not a finite number: {str(x)[:40]!r}")
    return float(x)


def _est(d: Any, what: str) -> tuple[float, float, float] | None:
    if d is None:
        return None
    if not isinstance(d, dict):
        raise ValueError(f"{what}: expected {{value, lo, hi}}")
    return _num(d.get("value")), _num(d.get("lo")), _num(d.get("hi"))


def _method(d: Any) -> str:
    """An estimate's interval method (forgetbench.stats); "" for a record without one."""
    return _text(d.get("method"), 100) if isinstance(d, dict) else ""


def _opt_num(x: Any) -> float | None:
    return None if x is None else _num(x)


def _printable(s: str) -> str:
    """A folder name or message as text that can be written: undecodable file-name bytes (which Python
    keeps as lone surrogates) become backslash escapes."""
    try:  # a file name's undecodable bytes, shown as the bytes they were (\xff)
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # any other lone surrogate
        return s.encode("utf-8", "backslashreplace").decode("utf-8")


def _text(x: Any, limit: int = 4000) -> str:
    return "" if x is None else str(x)[:limit]


def _load(path: Path) -> tuple[dict, dict, str]:
    """metadata.yaml, results.json (hostile-safe parsing: size caps, no YAML aliases, finite numbers)
    and the sha256 of results.json."""
    from forgetbench.leaderboard import submission as sub

    meta = sub.parse_yaml(sub.read_capped(path / sub.METADATA_FILE, sub.MAX_METADATA_BYTES))
    raw = sub.read_capped(path / sub.RESULTS_FILE, sub.MAX_RESULTS_BYTES)
    results = sub.parse_json(raw)
    if not isinstance(meta, dict) or not isinstance(results, dict):
        raise ValueError("metadata.yaml and results.json must each hold a mapping")
    return meta, results, hashlib.sha256(raw).hexdigest()


def _import_later_stages() -> None:
    """Import what ingest and render need (~1 s: duckdb, pandas, jinja2) while validation runs in
    worker processes, instead of after it."""
    import duckdb  # noqa: F401
    import pandas  # noqa: F401

    from forgetbench.leaderboard import site  # noqa: F401


def _schema_problems(meta: dict, results: dict) -> list[str]:
    """Structural checks only (no registry, no bootstrap): the `validate=False` path."""
    from forgetbench.leaderboard.schema import check_metadata, check_results

    return [str(p) for p in (*check_metadata(meta), *check_results(results))]


def _basic_badges(meta: dict) -> tuple[str, ...]:
    # validate=False only: "verified" and "reference" come from the maintainers' lists, which are
    # forgetbench.leaderboard.validate's (and forgetbench.leaderboard.trust's) business, never from the entry itself.
    return ("self-reported",)


def collect(submissions: Path, *, validate: bool = True) -> tuple[list[Entry], dict[str, float]]:
    """Every entry folder under `submissions`, validated and parsed; timings of both stages.

    validate=True (always, except in benchmarks): forgetbench.leaderboard.validate's full check, including the
    recomputation of every aggregate. validate=False: safe parsing and schema checks only."""
    if not submissions.is_dir():
        raise UserError(f"--submissions {submissions} is not a directory")
    paths = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    entries = [Entry(entry_id=p.name, path=p, status="OK") for p in paths]
    t0 = time.perf_counter()
    if validate:
        from forgetbench.leaderboard.validate import validate_entries

        # The table rows are made where each entry is checked (in parallel), and only they come back:
        # 10,000 parsed results.json would not fit in memory (~220 KB each).
        digest = partial(table_rows, hib=_higher_is_better(), builtin=_builtin_tasks())
        reports = validate_entries(paths, root=submissions, while_waiting=_import_later_stages, digest=digest)
        for e, rep in zip(entries, reports, strict=True):
            _from_report(e, rep)
    else:
        from forgetbench.leaderboard.submission import Invalid

        for e in entries:
            try:
                e.meta, e.results, e.sha256 = _load(e.path)
            except (Invalid, OSError, ValueError) as err:
                e.status, e.errors = "INVALID", (f"cannot read entry: {err}",)
                continue
            problems = _schema_problems(e.meta, e.results)
            if problems:
                e.status, e.errors = "INVALID", tuple(problems)
            e.badges = _basic_badges(e.meta)
    t1 = time.perf_counter()
    for e in entries:  # ids become file names and hrefs: enforced here whatever the validator said
        if e.status != "INVALID" and not (valid_id(e.path.name) and e.meta.get("id") == e.path.name):
            e.status, e.errors = "INVALID", (*e.errors, "folder name must be a valid entry id equal to metadata id")
    return entries, {"validate" if validate else "parse": t1 - t0}


# ---- ingest -------------------------------------------------------------------------------------------

def _higher_is_better() -> dict[str, bool]:
    from forgetbench.tasks import registry

    try:
        return {n: t.higher_is_better for n, t in registry.all_tasks().items()}
    except UserError:
        return {}


def _builtin_tasks() -> set[str] | None:
    """Names of the built-in registry's tasks (not --tasks-dir ones); None when the registry is broken."""
    from forgetbench.tasks import registry

    try:
        return {n for n, t in registry.all_tasks().items() if not t.custom}
    except UserError:
        return None


def table_rows(entry_id: str, m: dict, r: dict, sha256: str, hib: dict[str, bool],
               builtin: set[str] | None = None) -> tuple[str, Any]:
    """("ok", (entries row, entry_tasks rows, entry_kl rows, entry_forgotten rows)) of one parsed entry,
    or ("error", why) when a value has the wrong type. The rows are tuples in _COLUMNS order (a third
    of the memory of dicts), except the entries row: a dict without the validator's verdict
    (status, badges, warnings, reference), which _with_verdict adds."""
    try:
        rows = _rows(entry_id, m, r, sha256, hib, builtin)
    except (ValueError, TypeError, AttributeError) as err:
        return "error", str(err)
    entry, *rest = rows
    return "ok", (entry, *([tuple(row[c] for c in _NAMES[t]) for row in rs] for t, rs in zip(_TABLES[1:4], rest)))


def _with_verdict(entry: dict, e: Entry) -> tuple:
    entry = {**entry, "status": e.status, "badges": json.dumps(list(e.badges)),
             "warnings": json.dumps([_printable(w) for w in e.warnings]), "reference": "reference" in e.badges}
    return tuple(entry[c] for c in _NAMES["entries"])


def _rows(entry_id: str, m: dict, r: dict, sha256: str, hib: dict[str, bool],
          builtin: set[str] | None = None) -> tuple[dict, list[dict], list[dict], list[dict]]:
    """table_rows as dicts (raises ValueError / TypeError / AttributeError on a wrongly typed value)."""
    base, tuned = m.get("base") or {}, m.get("tuned") or {}
    if not isinstance(base, dict) or not isinstance(tuned, dict):
        raise ValueError("metadata base/tuned must be mappings")
    hp = m.get("hyperparameters") or {}
    if not isinstance(hp, dict):
        raise ValueError("metadata hyperparameters must be a mapping")
    target = _text(m.get("target"), 200)
    tasks, forgotten = [], []
    gain, gain_method = None, ""
    for t in r["tasks"]:
        name, agg = _text(t.get("task"), 200), t.get("aggregate") or {}
        role = "target" if t.get("role") == "target" else "probe"
        subs = agg.get("sub") or {}
        if not isinstance(subs, dict):
            raise ValueError(f"task {name}: aggregate.sub must be a mapping")
        for sub, a in [("", agg), *subs.items()]:
            b, tu, d = (_est(a.get(k), f"{name} {k}") for k in ("base", "tuned", "delta"))
            if b is None or tu is None or d is None:
                raise ValueError(f"task {name}: aggregate lacks base/tuned/delta")
            tasks.append({
                "entry_id": entry_id, "task": name, "sub": _text(sub, 200), "role": role,
                "version": _text(t.get("version"), 50), "data_hash": _text(t.get("data_hash"), 64),
                "metric": _text(a.get("metric") or t.get("primary_metric"), 200), "n": int(_num(a.get("n"))),
                "base": b[0], "base_lo": b[1], "base_hi": b[2], "tuned": tu[0], "tuned_lo": tu[1], "tuned_hi": tu[2],
                "delta": d[0], "delta_lo": d[1], "delta_hi": d[2],
                "forgotten": int(_num(a.get("forgotten", 0))), "learned": int(_num(a.get("learned", 0))),
                **{f"{k}_method": _method(a.get(k)) for k in ("base", "tuned", "delta")},
                "p_mcnemar": _opt_num(a.get("p_mcnemar")), "p_holm": _opt_num(a.get("p_holm")),
                "verdict": _text(a.get("verdict"), 20) or None,
            })
            if not sub and role == "target" and name == target:
                gain, gain_method = d, _method(a.get("delta"))
        right = (lambda s: s >= 0.5) if hib.get(name, True) else (lambda s: s < 0.5)
        kept = 0
        for it in t.get("items") or ():
            if kept >= FORGOTTEN_CAP:
                break
            ib, itu = it.get("base") or {}, it.get("tuned") or {}
            sb, st = _num(ib.get("score")), _num(itu.get("score"))
            if right(sb) and not right(st):
                kept += 1
                forgotten.append({
                    "entry_id": entry_id, "task": name, "pos": kept, "doc_id": int(_num(it.get("doc_id"))),
                    "prompt": _text(it.get("prompt")), "base_response": _text(ib.get("response")),
                    "tuned_response": _text(itu.get("response")), "base_score": sb, "tuned_score": st,
                })
    md = _est(r.get("mean_drop"), "mean_drop")
    kl_rows = []
    kl = r.get("kl")
    if isinstance(kl, dict):
        row = {"entry_id": entry_id, "task": _text(kl.get("task"), 200), "n_seq": int(_num(kl.get("n_seq"))),
               "n_tokens": int(_num(kl.get("n_tokens"))), "settings": json.dumps(kl.get("settings") or {})}
        for k in ("fwd_seq", "fwd_tok", "rev_tok", "tv_tok"):
            v = _est(kl.get(k), f"kl {k}") or (None, None, None)
            row.update({k: v[0], f"{k}_lo": v[1], f"{k}_hi": v[2]})
        kl_rows.append(row)
    intervals = r.get("intervals") or {}
    entry = {
        "entry_id": entry_id, "title": _text(m.get("title"), 300), "method": _text(m.get("method"), 50),
        "target": target, "base_hub_id": _text(base.get("hub_id"), 300), "base_revision": _text(base.get("revision"), 100),
        "base_hash": _text(base.get("content_hash"), 64),
        "base_spec": _text((r.get("pair") or {}).get("base_spec"), 300), "tuned_hub_id": _text(tuned.get("hub_id"), 300),
        "tuned_revision": _text(tuned.get("revision"), 100), "tuned_hash": _text(tuned.get("content_hash"), 64),
        "training_data": _text(m.get("training_data")), "hyperparameters": json.dumps(
            {_text(k, 200): v if isinstance(v, (int, float, bool)) or v is None else _text(v, 500) for k, v in hp.items()}),
        "compute": _text(m.get("compute"), 500), "contact": _text(m.get("contact"), 300),
        "licence": _text(m.get("licence"), 100), "notes": _text(m.get("notes")),
        "exported_at": _text(r.get("exported_at"), 60), "versions": json.dumps(r.get("versions") or {}),
        "settings": json.dumps((r.get("pair") or {}).get("settings") or {}), "seed": _text(r.get("seed"), 40),
        "intervals": _text(intervals.get("scheme"), 100) if isinstance(intervals, dict) else "",
        "results_sha256": sha256, "gain_method": gain_method, "mean_drop_method": _method(r.get("mean_drop")),
        "gain": gain[0] if gain else None, "gain_lo": gain[1] if gain else None, "gain_hi": gain[2] if gain else None,
        "mean_drop": md[0] if md else None, "mean_drop_lo": md[1] if md else None, "mean_drop_hi": md[2] if md else None,
        # any task (or a --target-prompts target) outside the built-in registry: ranked only among custom entries
        "custom": builtin is not None and any(n not in builtin for n in [target, *(t["task"] for t in tasks)]),
    }
    return entry, tasks, kl_rows, forgotten


_COLUMNS = {
    "entries": "entry_id VARCHAR PRIMARY KEY, title VARCHAR, method VARCHAR, target VARCHAR, status VARCHAR, "
               "badges JSON, warnings JSON, base_hub_id VARCHAR, base_revision VARCHAR, base_hash VARCHAR, base_spec VARCHAR, tuned_hub_id VARCHAR, "
               "tuned_revision VARCHAR, tuned_hash VARCHAR, training_data VARCHAR, hyperparameters JSON, "
               "compute VARCHAR, contact VARCHAR, licence VARCHAR, notes VARCHAR, reference BOOLEAN, "
               "exported_at VARCHAR, versions JSON, settings JSON, seed VARCHAR, intervals VARCHAR, "
               "results_sha256 VARCHAR, gain DOUBLE, gain_lo DOUBLE, gain_hi DOUBLE, mean_drop DOUBLE, "
               "mean_drop_lo DOUBLE, mean_drop_hi DOUBLE, custom BOOLEAN, gain_method VARCHAR, "
               "mean_drop_method VARCHAR",
    "entry_tasks": "entry_id VARCHAR, task VARCHAR, sub VARCHAR, role VARCHAR, version VARCHAR, data_hash VARCHAR, "
                   "metric VARCHAR, n INTEGER, base DOUBLE, base_lo DOUBLE, base_hi DOUBLE, tuned DOUBLE, "
                   "tuned_lo DOUBLE, tuned_hi DOUBLE, delta DOUBLE, delta_lo DOUBLE, delta_hi DOUBLE, "
                   "forgotten INTEGER, learned INTEGER, base_method VARCHAR, tuned_method VARCHAR, "
                   "delta_method VARCHAR, p_mcnemar DOUBLE, p_holm DOUBLE, verdict VARCHAR",
    "entry_kl": "entry_id VARCHAR PRIMARY KEY, task VARCHAR, n_seq INTEGER, n_tokens BIGINT, settings JSON, "
                "fwd_seq DOUBLE, fwd_seq_lo DOUBLE, fwd_seq_hi DOUBLE, fwd_tok DOUBLE, fwd_tok_lo DOUBLE, "
                "fwd_tok_hi DOUBLE, rev_tok DOUBLE, rev_tok_lo DOUBLE, rev_tok_hi DOUBLE, tv_tok DOUBLE, "
                "tv_tok_lo DOUBLE, tv_tok_hi DOUBLE",
    "entry_forgotten": "entry_id VARCHAR, task VARCHAR, pos INTEGER, doc_id INTEGER, prompt VARCHAR, "
                       "base_response VARCHAR, tuned_response VARCHAR, base_score DOUBLE, tuned_score DOUBLE",
    "excluded": "folder VARCHAR, errors JSON",
}
_TABLES = tuple(_COLUMNS)
_NAMES = {t: [c.split()[0] for c in cols.split(", ")] for t, cols in _COLUMNS.items()}


def ingest(db_path: Path, entries: list[Entry]):
    """A fresh DuckDB file with one table per entry aspect (schema in _COLUMNS); returns the connection."""
    import pandas as pd

    from forgetbench.runtime.dbfile import connect

    db_path.unlink(missing_ok=True)
    hib, builtin = _higher_is_better(), _builtin_tasks()
    data: dict[str, list[tuple]] = {k: [] for k in _COLUMNS}
    for e in entries:
        if e.status != "INVALID":
            kind, rows = e.rows or table_rows(e.entry_id, e.meta, e.results, e.sha256, hib, builtin)
            e.rows = None  # each entry's rows live only in `data` from here
            if kind == "error":
                e.status, e.errors = "INVALID", (*e.errors, f"cannot ingest: {rows}")
            else:
                entry, tasks, kl, forgotten = rows
                data["entries"].append(_with_verdict(entry, e))
                data["entry_tasks"].extend(tasks)
                data["entry_kl"].extend(kl)
                data["entry_forgotten"].extend(forgotten)
                continue
        data["excluded"].append((_printable(e.path.name), json.dumps([_printable(x) for x in e.errors])))
    con = connect(db_path)
    for table, cols in _COLUMNS.items():
        con.execute(f"CREATE TABLE {table} ({cols})")
        if data[table]:
            df = pd.DataFrame(data.pop(table), columns=_NAMES[table])  # noqa: F841 (read by duckdb by name)
            con.execute(f"INSERT INTO {table} SELECT * FROM df")
            del df
    return con


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
    entries, timings = collect(submissions, validate=validate)
    with staged(out, _owned) as new:
        t1 = time.perf_counter()
        con = ingest(new / DB_FILE, entries)
        t2 = time.perf_counter()
        try:
            site.render(con, new, templates=templates)
        finally:
            con.close()
    t3 = time.perf_counter()
    timings.update({"ingest": t2 - t1, "render": t3 - t2, "total": t3 - t0})
    n_ok = sum(e.status != "INVALID" for e in entries)
    return BuildResult(out=out, n_entries=n_ok, n_excluded=len(entries) - n_ok, timings=timings)


def cli_build(submissions: Path, out: Path, templates: Path | None = None) -> int:
    """Entry point of `forgetbench leaderboard build`."""
    if templates is not None and not templates.is_dir():
        raise UserError(f"--templates {templates} is not a directory")
    res = build(submissions, out, templates=templates)
    t = res.timings
    print(f"leaderboard: {res.n_entries} entries, {res.n_excluded} excluded -> {res.out / 'index.html'}")
    print("  " + ", ".join(f"{k} {v:.2f}s" for k, v in t.items()))
    return 0
