"""The leaderboard submission format (v2; v1 is still read): constants, safe loading of an entry's files.

An entry is a folder `submissions/<id>/` with `metadata.yaml` (written by the submitter) and
`results.json` (written by `forgetbench export`); submissions/README.md documents the format.
Everything here treats the files as hostile: sizes are capped before parsing, YAML aliases (bombs),
duplicate keys and deep nesting are rejected (results.json: forgetbench.leaderboard.strictjson), and every
problem becomes a `Problem(file, field, problem)` instead of an exception. Cross-checks that need the
registry, the statistics or other entries live in forgetbench.leaderboard.validate.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import yaml

from forgetbench.train.methods import METHODS as TRAIN_METHODS, OTHER as OTHER_METHOD

FORMAT = "forgetbench-results"
FORMAT_VERSION = 2  # 2: closed-form intervals with their methods, paired tests (forgetbench.stats)
READ_FORMAT_VERSIONS = (1, 2)  # 1: percentile-bootstrap CIs; recomputed in the current format on reading
SCHEMA_VERSION = 1
METADATA_FILE = "metadata.yaml"
RESULTS_FILE = "results.json"
VERIFIED_FILE = "verified.yaml"

ENTRY_ID = re.compile(r"[a-z0-9][a-z0-9._-]{2,80}")  # an entry's folder name, file name and href
FORGOTTEN_CAP = 50  # forgotten items kept per task for the entry page
HEX64 = re.compile(r"[0-9a-f]{64}")
DOC_HASH = re.compile(r"[0-9a-f]{16,64}")
GEN_KEY = re.compile(r"[0-9a-f]{8,64}")
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+")
SPDX = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]*( (AND|OR|WITH) [A-Za-z0-9][A-Za-z0-9.+-]*)*")
ROLES = ("target", "probe")

MAX_RESULTS_BYTES = 25 * 2**20
MAX_METADATA_BYTES = 64 * 2**10
MAX_VERIFIED_BYTES = 2**20
MAX_TASKS = 100
MAX_ITEMS = 20_000
MAX_KL_ITEMS = 100_000
MAX_N_BOOT = 20_000  # KL (and format v1) bootstrap replicates; recomputing costs linear in it; default 10,000
MAX_DEPTH = 32  # nesting of JSON/YAML containers (free-form settings included)
MAX_INT_DIGITS = 19  # every integer in the format fits an int64
MAX_ERRORS_PER_FILE = 50  # a systematically wrong file reports its first problems, then a count


@dataclass(frozen=True)
class Problem:
    file: str  # metadata.yaml | results.json | verified.yaml | <entry folder>
    field: str  # JSON path, e.g. tasks[3].aggregate.delta.lo ("" = the whole file)
    problem: str

    def to_json(self) -> dict:
        return {"file": self.file, "field": self.field, "problem": self.problem}

    def __str__(self) -> str:
        return f"{self.file}: {self.field or '(file)'}: {self.problem}"


class Invalid(Exception):
    """A file that cannot be read or parsed at all (carries the Problem to report)."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


# ------------------------------------------------------------------------------------ reading


def methods() -> tuple[str, ...]:
    """metadata.yaml's accepted `method` values: forgetbench train's registered methods (read now, so a method
    registered after import counts: forgetbench.train.methods, a light module), then "other"."""
    return (*TRAIN_METHODS, OTHER_METHOD)


def valid_id(entry_id: Any) -> bool:
    return isinstance(entry_id, str) and ENTRY_ID.fullmatch(entry_id) is not None


def read_capped(path: Path, cap: int) -> bytes:
    """The bytes of a regular file of at most `cap` bytes; symlinks, folders, devices are refused
    (a symlink to /dev/zero would otherwise never finish reading). One lstat answers every question
    (a build reads thousands of these)."""
    name = path.name
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise Invalid(Problem(name, "", "missing")) from None
    except OSError as e:
        raise Invalid(Problem(name, "", f"cannot stat: {e.strerror}")) from None
    if stat.S_ISLNK(st.st_mode):
        raise Invalid(Problem(name, "", "is a symlink; entries must contain regular files"))
    if not stat.S_ISREG(st.st_mode):
        raise Invalid(Problem(name, "", "is not a regular file"))
    if st.st_size > cap:
        raise Invalid(Problem(name, "", f"is {st.st_size:,} bytes, over the {cap:,}-byte cap"))
    try:
        # O_NOFOLLOW: a file swapped for a symlink after the lstat is refused, not followed.
        with open(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb") as f:
            # read(n) allocates n bytes up front: ask for the size seen, then for the rest if it grew.
            data = f.read(st.st_size + 1)
            if len(data) > st.st_size:
                data += f.read(cap + 1 - len(data))
    except OSError as e:
        raise Invalid(Problem(name, "", f"cannot read: {e.strerror}")) from None
    if len(data) > cap:  # grew while we looked
        raise Invalid(Problem(name, "", f"over the {cap:,}-byte cap"))
    return data


def text_of(data: bytes, name: str) -> str:
    """A file's text: not empty, valid UTF-8 (the problem named otherwise)."""
    if not data.strip():
        raise Invalid(Problem(name, "", "is empty"))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Invalid(Problem(name, "", f"is not valid UTF-8 (byte {e.start})")) from None


def levels(obj: Any) -> Iterator[list]:
    """The containers of a parsed document, one nesting level at a time: iterative (no recursion), so a
    deeply nested document cannot blow the stack, and a caller can stop after any level; a leaf costs
    one type test."""
    level = [obj] if type(obj) is dict or type(obj) is list else []
    while level:
        yield level
        nxt: list = []
        for x in level:
            for v in x.values() if type(x) is dict else x:
                if type(v) is dict or type(v) is list:
                    nxt.append(v)
        level = nxt


def _depth_ok(obj: Any, limit: int = MAX_DEPTH) -> bool:
    return next(islice(levels(obj), limit, None), None) is None  # at most `limit` levels of containers


class _StrictLoader(yaml.SafeLoader):
    """safe_load without anchors/aliases (billion-laughs bombs), duplicate keys or deep nesting."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.YAMLError(f"anchors and aliases are not allowed (line {event.start_mark.line + 1})")
        self._fb_depth = getattr(self, "_fb_depth", 0) + 1
        try:
            if self._fb_depth > MAX_DEPTH:
                raise yaml.YAMLError(f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._fb_depth -= 1

    def construct_mapping(self, node, deep=False):
        return _strict_mapping(self, node, deep)


def _strict_mapping(loader, node, deep):
    """construct_mapping of both strict loaders: scalar keys only, no duplicate keys."""
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool, type(None))):
            raise yaml.YAMLError(f"mapping keys must be scalars (line {key_node.start_mark.line + 1})")
        if key in seen:
            raise yaml.YAMLError(f"duplicate key {str(key)[:60]!r} (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep=deep)


class _StrictCLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """libyaml's parser with _StrictLoader's key checks; anchors, aliases and depth are checked on the
    event stream before anything is composed (the C composer cannot be hooked like compose_node)."""

    def construct_mapping(self, node, deep=False):
        return _strict_mapping(self, node, deep)


_NODE_EVENTS = (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)


def _fast_yaml(text: str) -> Any:
    """The document via libyaml when it has nothing _StrictLoader would refuse or report, else None.

    The pure-Python SafeLoader costs milliseconds per small file; a leaderboard build parses
    thousands. Anything unusual (an error, an anchor, an alias, deep nesting) goes back to the strict
    loader, so messages and edge cases stay exactly the strict loader's."""
    if not getattr(yaml, "__with_libyaml__", False):
        return None
    if "&" not in text and "*" not in text and text.count("[") + text.count("{") < MAX_DEPTH:
        # No anchor or alias can be written without & or *, and flow brackets alone cannot nest deep
        # (block nesting of a capped file stays shallow enough for libyaml; the caller checks the
        # depth of what comes back): the event pass below would find nothing (~a quarter of the time).
        return yaml.load(text, Loader=_StrictCLoader)  # noqa: S506 - a SafeLoader (SafeConstructor)
    open_ = 0
    for ev in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None):
            return None
        if isinstance(ev, _NODE_EVENTS) and open_ >= MAX_DEPTH:
            return None  # a node at depth MAX_DEPTH + 1
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            open_ += 1
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            open_ -= 1
    return yaml.load(text, Loader=_StrictCLoader)  # noqa: S506 - a SafeLoader (SafeConstructor)


def parse_yaml(data: bytes, name: str = METADATA_FILE) -> Any:
    text = text_of(data, name)
    try:
        obj = _fast_yaml(text)
    except Exception:  # noqa: BLE001 - whatever libyaml objects to, the strict loader reports
        obj = None
    if obj is not None and _depth_ok(obj):
        return obj
    try:
        obj = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader is a SafeLoader
    except yaml.YAMLError as e:
        raise Invalid(Problem(name, "", f"invalid YAML: {str(e)[:300]}")) from None
    except (RecursionError, ValueError, TypeError, OverflowError) as e:
        raise Invalid(Problem(name, "", f"invalid YAML: {type(e).__name__}: {str(e)[:200]}")) from None
    if not _depth_ok(obj):
        raise Invalid(Problem(name, "", f"nested deeper than {MAX_DEPTH} levels"))
    return obj
