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

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgetbench.leaderboard import integrity
from forgetbench.tasks import registry
from forgetbench.tasks.target_prompts import is_prompt_target
from forgetbench.errors import UserError
from forgetbench.runtime.fanout import chunked_map
from forgetbench.leaderboard.recompute import check_numbers, duplicate_rows
from forgetbench.leaderboard.submission import (
    MAX_METADATA_BYTES, MAX_RESULTS_BYTES, METADATA_FILE, RESULTS_FILE, Invalid, Problem, parse_json, parse_yaml,
    read_capped,
)
from forgetbench.leaderboard.schema import check_metadata, check_results
from forgetbench.leaderboard.trust import LIST_FILES, Trust, base_identity, tuned_fingerprint

OK, STALE, INVALID = "ok", "stale", "invalid"
ENTRY_FILES = (METADATA_FILE, RESULTS_FILE)


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


@dataclass
class _Entry:
    """One entry folder while it is being checked."""

    path: Path
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    metadata: dict | None = None  # set only when schema-valid
    results: dict | None = None  # set only when schema-valid
    sha256: str | None = None
    # What the cross-entry checks need of a schema-valid results.json (set by _summarize, so that the
    # parsed file itself need not travel back from a worker process nor stay in memory):
    fingerprint: str | None = None  # forgetbench.leaderboard.trust.tuned_fingerprint
    key: tuple | None = None  # (base hash, tuned hash, target): None when results.json is not schema-valid
    identity: tuple | None = None  # forgetbench.leaderboard.trust.base_identity
    base_runs: tuple = ()  # _base_runs
    digest: Any = None

    @property
    def id(self) -> str:
        return self.metadata["id"] if self.metadata else self.path.name


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
    try:
        kids = sorted(root.iterdir())
    except OSError:
        return []
    return [c for c in kids if not c.name.startswith(".") and (c.is_dir() or c.is_symlink())]


def _discover(paths, root: Path | None) -> tuple[list[Path], list[Path]]:
    """(entries to report on, roots whose entries form the comparison set)."""
    targets, roots = [], [] if root is None else [Path(root)]
    inside = None if root is None else Path(root).absolute()
    for p in map(Path, paths):
        # A folder directly inside the given root is always an entry (one report per path, in order).
        if p.is_dir() and not p.is_symlink() and p.absolute().parent != inside and is_root(p):
            roots.append(p)
            targets.extend(entry_dirs(p))
        else:
            targets.append(p)
            if root is None and any((p.parent / f).exists() for f in LIST_FILES):
                roots.append(p.parent)
    return targets, list(dict.fromkeys(roots))


# ------------------------------------------------------------------------------------ one entry


def load_entry(path: Path) -> _Entry:
    e = _Entry(path)
    where = path.name or str(path)
    if path.is_symlink():
        e.errors.append(Problem(where, "", "the entry folder is a symlink"))
        return e
    if not path.is_dir():
        e.errors.append(Problem(where, "", "is not an entry folder (missing or not a directory)"))
        return e
    try:
        extra = sorted(c.name for c in path.iterdir() if c.name not in ENTRY_FILES)
    except OSError as x:
        e.errors.append(Problem(where, "", f"cannot list the folder: {x.strerror}"))
        return e
    for name in extra:
        e.errors.append(Problem(name, "", f"unexpected file; an entry holds only {' and '.join(ENTRY_FILES)}"))
    md = res = None
    try:
        md = parse_yaml(read_capped(path / METADATA_FILE, MAX_METADATA_BYTES), METADATA_FILE)
        probs = check_metadata(md) + integrity.unencodable(md, METADATA_FILE)
        e.errors += probs
        e.metadata = None if probs else md
    except Invalid as x:
        e.errors.append(x.problem)
    try:
        data = read_capped(path / RESULTS_FILE, MAX_RESULTS_BYTES)
        e.sha256 = hashlib.sha256(data).hexdigest()
        res = parse_json(data, RESULTS_FILE)
        probs = check_results(res)
        # A lone surrogate can only come from a \udXXX escape (raw UTF-8 cannot hold one): walk every
        # string only when the file has such an escape.
        if _SURROGATE_ESCAPE.search(data):
            probs += integrity.unencodable(res, RESULTS_FILE)
        e.errors += probs
        e.results = None if probs else res
    except Invalid as x:
        e.errors.append(x.problem)
    return e


def _summarize(e: _Entry) -> None:
    """Fill the cross-check fields of an entry whose results.json is schema-valid."""
    if e.results is None:
        return
    p = e.results["pair"]
    e.fingerprint = tuned_fingerprint(e.results)
    e.key = p["base_hash"], p["tuned_hash"], p["target"]
    e.identity = base_identity(e.results)
    e.base_runs = _base_runs(e.results)


def _base_runs(res: dict) -> tuple:
    """((task, version, data_hash, gen_key), base scores) per task, in file order; the scores as one
    line per item, doc_id \\x1f doc_hash \\x1f repr(float(score)) (exact: repr round-trips a float; the
    schema makes doc_id an int and doc_hash hex). Compact text: thousands of entries are kept at once."""
    return tuple(((t["task"], t["version"], t["data_hash"], t["gen_key"]),
                  "\n".join(f"{i['doc_id']}\x1f{i['doc_hash']}\x1f{float(i['base']['score'])!r}" for i in t["items"]))
                 for t in res["tasks"])


_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")


def _check_consistency(e: _Entry, tasks: dict) -> None:
    """Folder/id, metadata vs results, registry (unknown task, role, stale), recomputed numbers."""
    md, res = e.metadata, e.results
    err = lambda f, fld, msg: e.errors.append(Problem(f, fld, msg))  # noqa: E731
    if md is not None and md["id"] != e.path.name:
        err(METADATA_FILE, "id", f"is {md['id']!r} but the folder is named {e.path.name!r}")
    if md is not None and is_prompt_target(md["target"]):
        pass  # `eval --target-prompts`: KL on the submitter's own prompts, no target task (a custom entry)
    elif md is not None and md["target"] not in tasks:
        err(METADATA_FILE, "target", f"unknown task {md['target']!r}")
    elif md is not None and tasks[md["target"]].role != "target":
        err(METADATA_FILE, "target", f"{md['target']!r} is a probe in the registry, not a target task")
    if res is None:
        return
    pair = res["pair"]
    if md is not None:
        for side in ("base", "tuned"):
            if md[side]["content_hash"] != pair[f"{side}_hash"]:
                err(METADATA_FILE, f"{side}.content_hash", f"does not match results.json pair.{side}_hash"
                    f" ({pair[f'{side}_hash'][:12]}...)")
        if md["target"] != pair["target"]:
            err(METADATA_FILE, "target", f"is {md['target']!r} but results.json pair.target is {pair['target']!r}")
    if pair["target"] is None:
        err(RESULTS_FILE, "pair.target", "is null: leaderboard entries must be evaluated with --target")
    names = [t["task"] for t in res["tasks"]]
    if pair["target"] is not None and pair["target"] not in names and not is_prompt_target(pair["target"]):
        err(RESULTS_FILE, "tasks", f"has no results for the target task {pair['target']!r}")
    seen: set[str] = set()
    for i, t in enumerate(res["tasks"]):
        p, name = f"tasks[{i}]", t["task"]
        if name in seen:
            err(RESULTS_FILE, f"{p}.task", f"task {name!r} appears twice")
        seen.add(name)
        spec = tasks.get(name)
        if spec is None:
            err(RESULTS_FILE, f"{p}.task", f"unknown task {name!r} (not in the registry)")
            continue
        role = "target" if name == pair["target"] else "probe"
        if t["role"] != role:
            err(RESULTS_FILE, f"{p}.role", f"is {t['role']!r}; with target {pair['target']!r} this task is a {role}")
        if t["version"] != spec.version:
            e.warnings.append(Problem(RESULTS_FILE, f"{p}.version", f"stale: task {name} is version {t['version']}"
                                      f" here, the registry has {spec.version}"))
        if duplicate_rows(t):
            e.warnings.append(Problem(RESULTS_FILE, f"{p}.items", f"{duplicate_rows(t)} item(s) repeat another"
                                      " item's doc_hash (exact duplicate rows in the task data)"))
        if spec.data_hashes and t["data_hash"] not in spec.data_hashes:
            e.warnings.append(Problem(RESULTS_FILE, f"{p}.data_hash", f"stale: data hash {t['data_hash'][:12]}... is"
                                      f" not among the registry's accepted hashes for {name}"))
    errors, warnings = integrity.check(res, tasks)
    e.errors += errors
    e.warnings += warnings
    v1 = res["format_version"] == 1
    e.errors.extend(check_numbers(res, tasks))  # a valid v1 entry comes back upgraded to the current format
    if v1 and not e.errors:
        e.warnings.append(Problem(RESULTS_FILE, "format_version", "format 1 (percentile-bootstrap CIs): its intervals"
                                  " and tests were recomputed from the items with forgetbench.stats; re-export the pair"
                                  " with `forgetbench export` to store them"))


# ------------------------------------------------------------------------------------ across entries


def _base_scores(run: str) -> dict[int, tuple[str, float]]:
    """{doc_id: (doc_hash, base score)} of one task of _base_runs (a repeated doc_id: the last one)."""
    out = {}
    for line in run.split("\n"):
        doc_id, doc_hash, score = line.split("\x1f")
        out[int(doc_id)] = (doc_hash, float(score))
    return out


def _check_canonical(e: _Entry, canon: _Entry) -> None:
    by_key = dict(canon.base_runs)
    for i, (key, run) in enumerate(e.base_runs):
        c = by_key.get(key)
        if c is None:
            continue
        mine, theirs = _base_scores(run), _base_scores(c)
        differ = sum(mine.get(k) != theirs.get(k) for k in set(mine) | set(theirs))
        if differ:
            e.errors.append(Problem(RESULTS_FILE, f"tasks[{i}].items", f"base scores on task {key[0]} differ from"
                                    f" the canonical entry {canon.id!r} for this base model on {differ} of"
                                    f" {len(theirs)} items (same base settings, task version, data and generation"
                                    " settings)"))


def _cross_checks(targets: list[_Entry], universe: list[_Entry], trust: Trust) -> None:
    """Ids, duplicates and copies (the earlier entry stays), maintainers' lists, canonical base scores."""
    by_id: dict[str, list[_Entry]] = {}
    for u in universe:
        by_id.setdefault(u.id, []).append(u)
    ok = lambda u: u.metadata is not None and u.key is not None  # noqa: E731
    # The earliest entry of each pair key and of each tuned fingerprint (precedence: forgetbench.leaderboard.trust).
    first_key: dict[tuple, _Entry] = {}
    first_print: dict[str, _Entry] = {}
    for u in sorted((u for u in universe if u.key is not None), key=trust.precedence):
        first_key.setdefault(u.key, u)
        first_print.setdefault(u.fingerprint, u)
    canonical = trust.canonical((u for u in universe if ok(u)), identity=lambda u: u.identity)
    for e in targets:
        others = [u for u in by_id.get(e.id, []) if u is not e]
        if others:
            e.errors.append(Problem(e.path.name, "id", f"id {e.id!r} is also used by {others[0].path}"))
        if e.key is not None and first_key[e.key] is not e:
            earlier = first_key[e.key]
            e.errors.append(Problem(RESULTS_FILE, "pair", f"duplicate: entry {earlier.id!r} came first with the same"
                                    " base, tuned model and target (the earlier entry stays; see submissions/README.md,"
                                    " Trust)"))
        elif e.fingerprint is not None and first_print[e.fingerprint] is not e:
            earlier = first_print[e.fingerprint]
            e.errors.append(Problem(RESULTS_FILE, "tasks", f"copy: the tuned model's per-item results are identical to"
                                    f" those of entry {earlier.id!r}, which came first with another tuned hash (the"
                                    " earlier entry stays)"))
        e.errors += trust.list_problems(e)
        if not ok(e):
            continue
        canon = canonical.get(e.identity)
        if canon is not None and canon is not e:
            _check_canonical(e, canon)


def _report(e: _Entry, trust: Trust) -> EntryReport:
    stale = any(w.problem.startswith("stale") for w in e.warnings)
    status = INVALID if e.errors else STALE if stale else OK
    badges = trust.badges(e) + (["stale"] if stale else [])
    return EntryReport(e.path.name or str(e.path), str(e.path), status, tuple(badges), tuple(e.errors), tuple(e.warnings),
                       e.metadata, e.results, e.sha256, None if e.errors else e.digest)


def validate_entries(paths, root: Path | None = None, while_waiting=None, digest=None) -> list[EntryReport]:
    """Reports for the entry folders in `paths` (a submissions root stands for all its entries).

    Duplicates and canonical base scores are checked against every entry of `root` and of the roots
    the paths are in (a folder holding verified.yaml or reference.yaml). Never raises on malformed entries.
    `while_waiting()`, if given, runs in this process while worker processes check the entries (the
    leaderboard builder imports its next stages meanwhile).

    `digest(folder name, metadata, results, sha256)`, if given (a module-level function: it goes to the
    worker processes), is called where an entry is checked, on each entry to report on that passed the
    per-entry checks, after format v1 results were upgraded; its value is the report's `digest`
    (None on an invalid report) and reports carry no `results`: a root of 10,000 parsed entries
    would not fit in memory (the leaderboard builder makes its table rows this way)."""
    targets, roots = _discover(paths, root)
    trust = Trust(roots)
    vprobs: list[Problem] = list(trust.problems)
    try:
        tasks = registry.all_tasks()
    except UserError as x:  # a broken registry is the checkout's problem, reported on every entry
        tasks, vprobs = {}, [*vprobs, Problem("tasks/", "", str(x))]
    # Every folder once, keyed by absolute path; the entries to report on are checked in full, the
    # rest of the roots' entries are only loaded (they are the comparison set of the cross-checks).
    jobs: dict[Path, tuple[Path, bool]] = {}
    for p in targets:
        jobs.setdefault(Path(p).absolute(), (Path(p), True))
    for p in (p for r in roots for p in entry_dirs(r)):
        jobs.setdefault(Path(p).absolute(), (Path(p), False))
    loaded = dict(zip(jobs, _check_all(list(jobs.values()), tasks, vprobs, while_waiting, digest)))
    mine = [loaded[Path(p).absolute()] for p in targets]
    universe = list(loaded.values())
    try:
        _cross_checks(mine, universe, trust)
    except Exception as x:  # noqa: BLE001
        for e in mine:
            e.errors.append(_internal(x))
    return [_report(e, trust) for e in mine]


# Below this many entries a process pool costs more to start than it saves.
PARALLEL_MIN_ENTRIES = 32
_CHUNK = 8  # entries per task sent to a worker


def _check_one(path: Path, full: bool, tasks: dict, vprobs: list[Problem]) -> _Entry:
    """load_entry, and for an entry to report on the per-entry checks; never raises."""
    try:
        e = load_entry(path)
        _summarize(e)
    except Exception as x:  # noqa: BLE001
        return _Entry(path, errors=[_internal(x)])
    if full:
        e.errors += vprobs
        try:
            _check_consistency(e, tasks)
        except Exception as x:  # noqa: BLE001
            e.errors.append(_internal(x))
    return e


def _digested(e: _Entry, full: bool, digest) -> _Entry:
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


def _check_chunk(jobs: list[tuple[Path, bool]], tasks: dict, vprobs: list[Problem], digest=None) -> list[_Entry]:
    return [_digested(_check_one(p, full, tasks, vprobs), full, digest) for p, full in jobs]


def _check_all(jobs: list[tuple[Path, bool]], tasks: dict, vprobs: list[Problem], while_waiting=None,
               digest=None) -> list[_Entry]:
    """The per-entry work (parsing, schema, recomputed statistics) of every job, in order, spread over
    the cores for large roots (entries are independent; the cross-entry checks stay in the caller).
    Failures of an entry become error entries inside the worker; a failed pool is redone here."""
    return chunked_map(_check_chunk, jobs, tasks, vprobs, digest, min_per_worker=PARALLEL_MIN_ENTRIES, chunk=_CHUNK,
                       while_waiting=while_waiting)


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
