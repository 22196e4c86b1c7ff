"""The checks of one entry folder on its own (forgetbench.leaderboard.validate runs them, in worker
processes for large roots): its files parsed defensively and checked against the schema; folder name,
metadata and results agreeing; the registry's tasks, roles and versions; every number recomputed from
the items (forgetbench.leaderboard.recompute) and the entry being what the registry says it is
(forgetbench.leaderboard.integrity). Problems are collected on the CheckedEntry, never raised."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgetbench.leaderboard import integrity
from forgetbench.leaderboard.recompute import check_numbers, duplicate_rows
from forgetbench.leaderboard.schema import check_metadata, check_results
from forgetbench.leaderboard.strictjson import parse_json
from forgetbench.leaderboard.submission import (
    MAX_METADATA_BYTES, MAX_RESULTS_BYTES, METADATA_FILE, RESULTS_FILE, Invalid, Problem, parse_yaml, read_capped,
)
from forgetbench.leaderboard.trust import base_identity, tuned_fingerprint
from forgetbench.tasks.target_prompts import is_prompt_target

ENTRY_FILES = (METADATA_FILE, RESULTS_FILE)


@dataclass
class CheckedEntry:
    """One entry folder while it is being checked."""

    path: Path
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    metadata: dict | None = None  # set only when schema-valid
    results: dict | None = None  # set only when schema-valid
    sha256: str | None = None
    # What the cross-entry checks need of a schema-valid results.json (set by summarize, so that the
    # parsed file itself need not travel back from a worker process nor stay in memory):
    fingerprint: str | None = None  # forgetbench.leaderboard.trust.tuned_fingerprint
    key: tuple | None = None  # (base hash, tuned hash, target): None when results.json is not schema-valid
    identity: tuple | None = None  # forgetbench.leaderboard.trust.base_identity
    base_runs: tuple = ()  # base_runs
    digest: Any = None

    @property
    def id(self) -> str:
        return self.metadata["id"] if self.metadata else self.path.name


def load_entry(path: Path) -> CheckedEntry:
    e = CheckedEntry(path)
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
        if SURROGATE_ESCAPE.search(data):
            probs += integrity.unencodable(res, RESULTS_FILE)
        e.errors += probs
        e.results = None if probs else res
    except Invalid as x:
        e.errors.append(x.problem)
    return e


def summarize(e: CheckedEntry) -> None:
    """Fill the cross-check fields of an entry whose results.json is schema-valid."""
    if e.results is None:
        return
    p = e.results["pair"]
    e.fingerprint = tuned_fingerprint(e.results)
    e.key = p["base_hash"], p["tuned_hash"], p["target"]
    e.identity = base_identity(e.results)
    e.base_runs = base_runs(e.results)


def base_runs(res: dict) -> tuple:
    """((task, version, data_hash, gen_key), base scores) per task, in file order; the scores as one
    line per item, doc_id \\x1f doc_hash \\x1f repr(float(score)) (exact: repr round-trips a float; the
    schema makes doc_id an int and doc_hash hex). Compact text: thousands of entries are kept at once."""
    return tuple(((t["task"], t["version"], t["data_hash"], t["gen_key"]),
                  "\n".join(f"{i['doc_id']}\x1f{i['doc_hash']}\x1f{float(i['base']['score'])!r}" for i in t["items"]))
                 for t in res["tasks"])


SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")


def check_consistency(e: CheckedEntry, tasks: dict) -> None:
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
