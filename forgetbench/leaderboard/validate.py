"""`forgetbench validate PATH...`: is a leaderboard entry well-formed, internally consistent and honest
about its numbers?

Per entry: the schema (forgetbench.leaderboard.schema), folder name == metadata.id, metadata hashes ==
results hashes, target known; every aggregate recomputed from the per-item rows with
forgetbench.stats.paired and the KL estimate with forgetbench.kl.estimate.summarize (forgetbench.leaderboard.recompute);
task versions and data hashes against the registry (a mismatch makes the entry STALE, a warning).
Whether the entry is what the registry says it is (its rows, its suite, metric ranges, the project's
interval settings, text that can be written) is forgetbench.leaderboard.integrity's part. Across entries of a
submissions root (forgetbench.leaderboard.trust, submissions/README.md "Trust"): badges only from the maintainers'
verified.yaml / reference.yaml; a duplicate pair or a copy of another entry's tuned results is an error
on the later entry only (git order), and base scores must equal those of the canonical run of the same
base identity (the first verified entry with the same base hash and output-changing settings) wherever
both ran the same task version, data and generation settings.

`validate_entries(paths)` is the pure core the leaderboard builder calls; it never raises on bad
input: every problem is a Problem(file, field, problem) in the entry's report. The per-entry part
(parsing, schema, recomputation) runs in a process pool over the available cores for large roots;
the cross-entry checks run afterwards in the calling process.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgetbench.leaderboard.crosscheck import cross_checks
from forgetbench.leaderboard.entry import ENTRY_FILES, CheckedEntry, check_consistency, load_entry, summarize
from forgetbench.tasks import registry
from forgetbench.errors import UserError
from forgetbench.runtime.fanout import chunked_imap, no_gc
from forgetbench.leaderboard.submission import (
    Problem,
)
from forgetbench.leaderboard.trust import LIST_FILES, Trust

OK, STALE, INVALID = "ok", "stale", "invalid"


@dataclass(frozen=True)
class EntryReport:
    entry: str  # the folder name (== metadata.id in a valid entry)
    path: str
    status: str  # ok | stale | invalid
    badges: tuple[str, ...]  # verified | self-reported, reference, stale
    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    # The parsed files (schema-valid when status != invalid), for the leaderboard builder.
    metadata: dict | None = field(default=None, compare=False, repr=False)
    results: dict | None = field(default=None, compare=False, repr=False)
    results_sha256: str | None = None
    # validate_entries(digest=...): digest(entry folder name, metadata, results, sha256) of an entry the
    # per-entry checks passed, computed where it was checked; `results` is then None (see validate_entries).
    digest: Any = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict:
        return {"entry": self.entry, "path": self.path, "status": self.status, "badges": list(self.badges),
                "errors": [p.to_json() for p in self.errors], "warnings": [p.to_json() for p in self.warnings]}


# ------------------------------------------------------------------------------------ discovery


def is_root(p: Path) -> bool:
    """A submissions root (holds entry folders) rather than an entry folder."""
    if any((p / f).exists() for f in LIST_FILES):
        return True
    if any((p / f).exists() or (p / f).is_symlink() for f in ENTRY_FILES):
        return False
    try:
        return any(c.is_dir() and any((c / f).exists() for f in ENTRY_FILES) for c in p.iterdir())
    except OSError:
        return False


def entry_dirs(root: Path) -> list[Path]:
    """The folders (and symlinks, which validate refuses by name) of a root, in name order. Listed with
    os.scandir (its file types need no stat per entry) and sorted by name, not by Path (~1 s at 10,000)."""
    try:
        with os.scandir(root) as it:
            kids = sorted((c.name, c.is_dir() or c.is_symlink()) for c in it if not c.name.startswith("."))
    except OSError:
        return []
    return [root / name for name, keep in kids if keep]


def _discover(paths, root: Path | None) -> tuple[list[Path], list[Path]]:
    """(entries to report on, roots whose entries form the comparison set)."""
    given = None if root is None else Path(root)
    targets, roots = [], [] if given is None else [given]
    inside = None if given is None else given.absolute()
    for p in map(Path, paths):
        # A folder directly inside the given root is always an entry (one report per path, in order);
        # a build's paths are (root / name), known to be inside without a stat.
        within = given is not None and (p.parent == given or p.absolute().parent == inside)
        if not within and p.is_dir() and not p.is_symlink() and is_root(p):
            roots.append(p)
            targets.extend(entry_dirs(p))
        else:
            # `validate .` inside an entry folder: it is reported under its own name (not ''), and the
            # folder holding it is its root
            p = Path(os.path.abspath(p)) if p.name in ("", "..") else p
            targets.append(p)
            if root is None and any((p.parent / f).exists() for f in LIST_FILES):
                roots.append(p.parent)
    return targets, list(dict.fromkeys(roots))


# ---------------------------------------- checking (one entry: leaderboard/entry.py; across entries: crosscheck.py)


def _report(e: CheckedEntry, trust: Trust) -> EntryReport:
    stale = any(w.problem.startswith("stale") for w in e.warnings)
    status = INVALID if e.errors else STALE if stale else OK
    badges = trust.badges(e) + (["stale"] if stale else [])
    return EntryReport(e.path.name or str(e.path), str(e.path), status, tuple(badges), tuple(e.errors), tuple(e.warnings),
                       e.metadata, e.results, e.sha256, None if e.errors else e.digest)


def validate_entries(paths, root: Path | None = None, while_waiting=None, digest=None,
                     receive=None) -> list[EntryReport]:
    """Reports for the entry folders in `paths` (a submissions root stands for all its entries).

    Duplicates and canonical base scores are checked against every entry of `root` and of the roots
    the paths are in (a folder holding verified.yaml or reference.yaml). Never raises on malformed entries.
    `while_waiting()`, if given, runs in this process while worker processes check the entries (the
    leaderboard builder imports its next stages meanwhile).

    `digest(folder name, metadata, results, sha256)`, if given (a module-level function: it goes to the
    worker processes), is called where an entry is checked, on each entry to report on that passed the
    per-entry checks, after format v1 results were upgraded; its value is the report's `digest`
    (None on an invalid report) and reports carry no `results`: a root of 10,000 parsed entries
    would not fit in memory (the leaderboard builder makes its table rows this way).

    `receive(digest)`, if given, runs in this process on each digest as soon as its chunk of entries
    comes back from a worker (in order, before the cross-entry checks), and its value replaces the digest
    (the leaderboard builder stores the bulky table rows at once and keeps only what waits for the
    verdict). It is not called on an entry without a digest; its errors are the caller's (they propagate)."""
    targets, roots = _discover(paths, root)
    trust = Trust(roots)
    vprobs: list[Problem] = list(trust.problems)
    try:
        tasks = registry.all_tasks()
    except UserError as x:  # a broken registry is the checkout's problem, reported on every entry
        tasks, vprobs = {}, [*vprobs, Problem("tasks/", "", str(x))]
    # Every folder once, keyed by absolute path; the entries to report on are checked in full, the
    # rest of the roots' entries are only loaded (they are the comparison set of the cross-checks).
    # Keyed by the absolute path as normalized text, so `validate . --root ..` in an entry folder checks it
    # once (Path.absolute() asks the OS for the cwd on every call; hashing 20,000 Paths costs more than
    # strings). Simplification: ".." is taken lexically (a symlinked folder before it is not followed).
    cwd = os.getcwd()
    key = lambda p: os.path.normpath(os.path.join(cwd, p))  # noqa: E731
    jobs: dict[str, tuple[Path, bool]] = {}
    for p in targets:  # Paths already (_discover)
        jobs.setdefault(key(p), (p, True))
    for p in (p for r in roots for p in entry_dirs(r)):
        jobs.setdefault(key(p), (p, False))
    loaded = dict(zip(jobs, _check_all(list(jobs.values()), tasks, vprobs, while_waiting, digest, receive), strict=True))
    mine = [loaded[key(p)] for p in targets]
    universe = list(loaded.values())
    try:
        cross_checks(mine, universe, trust)
    except Exception as x:  # noqa: BLE001
        for e in mine:
            e.errors.append(_internal(x))
    return [_report(e, trust) for e in mine]


# Below this many entries a process pool costs more to start than it saves.
PARALLEL_MIN_ENTRIES = 32
_CHUNK = 16  # entries per task sent to a worker (each task costs the pool ~1 ms of this process's threads)


def _check_one(path: Path, full: bool, tasks: dict, vprobs: list[Problem]) -> CheckedEntry:
    """load_entry, and for an entry to report on the per-entry checks; never raises."""
    try:
        e = load_entry(path)
        summarize(e)
    except Exception as x:  # noqa: BLE001
        return CheckedEntry(path, errors=[_internal(x)])
    if full:
        e.errors += vprobs
        try:
            check_consistency(e, tasks)
        except Exception as x:  # noqa: BLE001
            e.errors.append(_internal(x))
    return e


def _digested(e: CheckedEntry, full: bool, digest) -> CheckedEntry:
    """validate_entries(digest=...): the digest of an entry to report on that passed so far, and the
    parsed results dropped (only the digest and the cross-check fields go back)."""
    if digest is None:
        return e
    if full and not e.errors:
        try:
            e.digest = digest(e.path.name, e.metadata, e.results, e.sha256)
        except Exception as x:  # noqa: BLE001
            e.errors.append(_internal(x))
    e.results = None
    return e


def _check_chunk(jobs: list[tuple[Path, bool]], tasks: dict, vprobs: list[Problem], digest=None) -> list[CheckedEntry]:
    return [_digested(_check_one(p, full, tasks, vprobs), full, digest) for p, full in jobs]


def _check_all(jobs: list[tuple[Path, bool]], tasks: dict, vprobs: list[Problem], while_waiting=None,
               digest=None, receive=None) -> list[CheckedEntry]:
    """The per-entry work (parsing, schema, recomputed statistics) of every job, in order, spread over
    the cores for large roots (entries are independent; the cross-entry checks stay in the caller).
    Failures of an entry become error entries inside the worker; what a failed pool had not handed
    over yet is redone here (each chunk reaches `receive` once)."""
    out: list[CheckedEntry] = []
    try:
        for part in chunked_imap(_check_chunk, jobs, tasks, vprobs, digest, min_per_worker=PARALLEL_MIN_ENTRIES,
                                 chunk=_CHUNK, while_waiting=while_waiting):
            with no_gc():
                for e in part if receive is not None else ():
                    if e.digest is not None:
                        e.digest = receive(e.digest)
                out += part
            # Thousands of entries are kept (and the pool's thread unpickles more meanwhile): frozen, what
            # was received is out of every later GC pass instead of walked again and again (~1.5 s at 10k).
            gc.freeze()
    finally:
        gc.unfreeze()
    return out


def _internal(x: Exception) -> Problem:
    """Last line of defence: a bug must not hide the other entries' reports. The fuzzer counts these."""
    return Problem("", "", f"internal error ({type(x).__name__}: {str(x)[:200]}); please report this")


# ------------------------------------------------------------------------------------ CLI


def render(reports: list[EntryReport]) -> str:
    lines = []
    for r in reports:
        lines.append(f"{r.status.upper():<8} {r.entry}  [{', '.join(r.badges)}]  {r.path}")
        lines += [f"    error: {p}" for p in r.errors]
        lines += [f"    warning: {p}" for p in r.warnings]
    n = {s: sum(r.status == s for r in reports) for s in (OK, STALE, INVALID)}
    lines.append(f"{len(reports)} entr{'y' if len(reports) == 1 else 'ies'}: {n[OK]} ok, {n[STALE]} stale,"
                 f" {n[INVALID]} invalid")
    return "\n".join(lines) + "\n"


def main(args) -> int:
    for p in args.paths:
        if not Path(p).exists() and not Path(p).is_symlink():
            raise UserError(f"{p}: no such entry folder or submissions root")
    reports = validate_entries(args.paths, root=args.root)
    if not reports:
        raise UserError(f"no entry folders found in {', '.join(map(str, args.paths))}")
    if args.json:
        print(json.dumps([r.to_json() for r in reports], indent=2))
    else:
        sys.stdout.write(render(reports))
    return 1 if any(r.status == INVALID for r in reports) else 0
