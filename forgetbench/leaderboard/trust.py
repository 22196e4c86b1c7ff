"""Who may claim what about a leaderboard entry (submissions/README.md, "Trust").

A submitter controls the files of their own entry folder and nothing else. Only maintainers control
the lists in the submissions root (CODEOWNERS routes every change of them to maintainers):
`verified.yaml` (entries the maintainers reproduced) and `reference.yaml` (the project's own example
entries), each a list of {id, sha256 of results.json}. From them, and from git history, this module
derives everything trust-related:

- badges: "verified" / "reference" only when listed with the sha256 of the current results.json;
  an entry's own `reference: true` grants nothing and is an error unless the entry is listed;
- precedence between entries ("earlier"): listed in verified.yaml (file order), then in
  reference.yaml (file order), then git history: the commit that first added the entry's
  results.json, ancestors before descendants (`git log --topo-order`: a forged commit date cannot
  move a commit before its parents), then entries git does not know yet (a pull request's working
  tree), then the entry id. Duplicates (same base, tuned model and target) and copies (identical
  tuned per-item results under another tuned hash) keep the earliest entry; the later ones are errors
  that name it;
- the canonical base run: per base identity (base content hash + the evaluation settings that change
  outputs: backend, dtype, chat template, seed, generation cap), the first entry of verified.yaml with
  that identity; no verified entry, no canonical run. Entries whose base ran under other settings are
  never compared item by item with it.

Simplification: without git (or outside a repository) precedence falls back to the lists and the id.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from forgetbench.tasks.data import canonical
from forgetbench.records import EvalSettings
from forgetbench.leaderboard.submission import MAX_VERIFIED_BYTES, RESULTS_FILE, VERIFIED_FILE, Invalid, Problem, parse_yaml, read_capped
from forgetbench.leaderboard.schema import check_verified

REFERENCE_FILE = "reference.yaml"
LIST_FILES = (VERIFIED_FILE, REFERENCE_FILE)
IDENTITY_FIELDS = tuple(EvalSettings().key_fields())  # what changes a model's outputs (the cache key)
_LAST = float("inf")


def read_list(root: Path, name: str) -> tuple[dict[str, str], list[Problem]]:
    """{id: sha256} of a maintainers' list in `root`, in file order (missing or empty file: {})."""
    path = root / name
    if not path.exists() and not path.is_symlink():
        return {}, []
    try:
        v = parse_yaml(read_capped(path, MAX_VERIFIED_BYTES), name)
    except Invalid as x:
        return ({}, []) if x.problem.problem == "is empty" else ({}, [x.problem])
    probs = [Problem(name, p.field, p.problem) for p in check_verified(v)]
    return ({} if probs else {e["id"]: e["sha256"] for e in v or []}), probs


def write_list(root: Path, name: str, entries: list[Path], header: str) -> Path:
    """Write a maintainers' list (`name` in `root`) naming `entries` with the sha256 of their results.json
    (for programs that produce reference entries themselves, like `forgetbench demo`)."""
    lines = [f"# {line}" for line in header.splitlines()]
    for e in sorted(entries):
        lines += [f"- id: {e.name}", f"  sha256: {hashlib.sha256((e / RESULTS_FILE).read_bytes()).hexdigest()}"]
    path = root / name
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def git_order(root: Path) -> dict[str, int]:
    """Entry folder name -> rank of the commit that first added its results.json, ancestors first.
    {} when `root` is not in a git repository or git is unavailable."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(root), "-c", "core.fsmonitor=false", *args], capture_output=True,
                               env=env, timeout=120, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.decode("utf-8", "replace") if r.returncode == 0 else None

    prefix = git("rev-parse", "--show-prefix")
    if prefix is None:
        return {}
    prefix = prefix.strip()
    log = git("log", "--topo-order", "--reverse", "--no-renames", "--diff-filter=A", "--name-only",
              "--format=%x01", "--", ".")
    if log is None:
        return {}
    order: dict[str, int] = {}
    for rank, chunk in enumerate(log.split("\x01")):
        for line in chunk.splitlines():
            parts = line.strip()[len(prefix):].split("/") if line.strip().startswith(prefix) else []
            if len(parts) == 2 and parts[1] == RESULTS_FILE:
                order.setdefault(parts[0], rank)
    return order


def base_identity(res: dict) -> tuple[str, str]:
    """(base content hash, the output-changing settings it ran under): two entries are runs of one base
    only when both agree (issue: a base in float32 and in bfloat16 are different runs)."""
    s = res["pair"]["settings"]
    return res["pair"]["base_hash"], canonical({k: s.get(k) for k in IDENTITY_FIELDS})


def tuned_fingerprint(res: dict) -> str:
    """Hash of the tuned model's per-item results (task, item, score, response) of a schema-valid entry."""
    h = hashlib.sha256()
    for t in sorted(res["tasks"], key=lambda t: t["task"]):
        # one update per task (the same bytes as one per field: a third of the time)
        h.update("".join(f"{t['task']}\x1f{it['doc_hash']}\x1f{it['tuned']['score']!r}\x1f{it['tuned']['response']}\x1e"
                         for it in sorted(t["items"], key=lambda i: i["doc_id"])).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


class Trust:
    """The maintainers' lists of the roots in play, and precedence between entries."""

    def __init__(self, roots: list[Path]):
        self.verified: dict[str, str] = {}
        self.reference: dict[str, str] = {}
        self.problems: list[Problem] = []
        self.git: dict[Path, dict[str, int]] = {}
        for r in roots:
            for name, into in ((VERIFIED_FILE, self.verified), (REFERENCE_FILE, self.reference)):
                listed, probs = read_list(r, name)
                into.update(listed)
                self.problems += probs
        self._pos = {k: {i: n for n, i in enumerate(d)} for k, d in (("v", self.verified), ("r", self.reference))}

    def is_verified(self, e) -> bool:
        return e.sha256 is not None and self.verified.get(e.id) == e.sha256

    def is_reference(self, e) -> bool:
        return e.sha256 is not None and self.reference.get(e.id) == e.sha256

    def _git_rank(self, path: Path) -> float:
        root = path.absolute().parent
        if root not in self.git:
            self.git[root] = git_order(root)
        return self.git[root].get(path.name, _LAST)

    def precedence(self, e) -> tuple:
        """Sort key: smaller = earlier (see the module docstring)."""
        if self.is_verified(e):
            return (0, self._pos["v"][e.id], "")
        if self.is_reference(e):
            return (1, self._pos["r"][e.id], "")
        return (2, self._git_rank(e.path), e.id)

    def list_problems(self, e) -> list[Problem]:
        """A listed entry whose results.json changed since it was listed, and self-declared reference."""
        out = []
        for name, listed in ((VERIFIED_FILE, self.verified), (REFERENCE_FILE, self.reference)):
            if e.id in listed and e.sha256 != listed[e.id]:
                out.append(Problem(name, e.id, f"results.json changed since it was listed (sha256"
                                   f" {(e.sha256 or 'unreadable')[:12]}... != {listed[e.id][:12]}...); a maintainer"
                                   f" must re-check it and update {name}"))
        if e.metadata is not None and e.metadata.get("reference") is True and e.id not in self.reference:
            out.append(Problem("metadata.yaml", "reference", f"is true, but only the maintainers' {REFERENCE_FILE}"
                               " makes an entry a reference entry; remove the field (or set it to false)"))
        return out

    def canonical(self, entries, identity=None) -> dict[tuple, object]:
        """Base identity -> its canonical entry: the first verified entry (verified.yaml order).
        `identity(e)` is an entry's base identity (default: base_identity of its parsed results; entries
        without parsed results are skipped then)."""
        if identity is None:
            entries, identity = (e for e in entries if e.results is not None), lambda e: base_identity(e.results)
        out: dict[tuple, object] = {}
        for e in sorted((e for e in entries if self.is_verified(e)), key=lambda e: self._pos["v"][e.id]):
            out.setdefault(identity(e), e)
        return out

    def badges(self, e) -> list[str]:
        out = ["verified" if self.is_verified(e) else "self-reported"]
        if self.is_reference(e):
            out.append("reference")
        return out
