"""Opening DuckDB files safely: no network, no writes to a file that is not ours, one clear line per fault.

Every DuckDB connection forgetbench opens goes through `connect`, which turns extension autoloading
and autoinstalling off: a file DuckDB does not recognise (a SQLite database, say) would otherwise make
it download an extension over HTTP, and a benchmark tool must never reach the network by itself.

`refusal(path)` looks at the first bytes before DuckDB does, so foreign files are named without
DuckDB touching them; `explain(err, path)` turns a DuckDB or OS error into the one line the CLI prints
(damaged, foreign, newer, read-only, full disk, locked), naming the real cause. Simplifications: the
damage classes are recognised by DuckDB's message texts (stable across 1.x/2.x, tested); a fault
DuckDB only meets while reading a damaged data page surfaces at that query, not at open.
"""

from __future__ import annotations

import errno
from pathlib import Path

# Applied to every connection (store, leaderboard ingest, site, law, export): never fetch extensions.
NO_NETWORK = {"autoload_known_extensions": False, "autoinstall_known_extensions": False}

_MAGIC_OFFSET, _MAGIC = 8, b"DUCK"
_SQLITE = b"SQLite format 3\x00"


def connect(path, read_only: bool = False):
    """duckdb.connect with extension autoloading/autoinstalling off (see the module docstring)."""
    import duckdb

    return duckdb.connect(str(path), read_only=read_only, config=dict(NO_NETWORK))


def refusal(path: Path) -> str | None:
    """Why the existing file `path` is not a DuckDB database, judged from its header, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if not head:
        return "is an empty file, not a DuckDB database"
    if head.startswith(_SQLITE):
        return "is a SQLite database, not a DuckDB file"
    if head[_MAGIC_OFFSET:_MAGIC_OFFSET + len(_MAGIC)] != _MAGIC:
        return "is not a DuckDB file (no DuckDB header)"
    return None


_DAMAGED = ("could not read enough bytes", "corrupt database", "checksum", "not a valid duckdb database",
            "failed to read", "invalid block", "serialization error", "deserializ")
_FULL = ("no space left on device", "disk is full", "out of space", "disk quota exceeded")
_READ_ONLY = ("read-only file system", "permission denied", "operation not permitted")
_NEWER = ("version number", "newer version", "unsupported storage version", "storage version")


def explain(err: BaseException, path) -> str:
    """One line for a DuckDB/OS error on the store file `path` (the real cause first)."""
    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    low = str(err).lower()
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT) or any(s in low for s in _FULL):
        return (f"no space left on device while writing {path} ({msg}); the tasks finished before are kept"
                " in the store: free some space and rerun")
    if "lock" in low and ("conflicting" in low or "could not set lock" in low):
        return f"the store {path} is in use by another process ({msg})"
    if isinstance(err, OSError) and err.errno in (errno.EROFS, errno.EACCES, errno.EPERM) or any(
            s in low for s in _READ_ONLY):
        return (f"cannot write the store {path}: {msg} (the file or its folder is read-only); use a writable"
                " --db, or copy the file somewhere writable")
    if any(s in low for s in _NEWER):
        return (f"{path} was written by a newer DuckDB than this one ({msg}); upgrade the duckdb package"
                " (forgetbench did not change the file)")
    if any(s in low for s in _DAMAGED):
        return (f"the store {path} is damaged ({msg}); forgetbench did not change it: restore it from a backup"
                " or use another --db")
    return f"DuckDB error on {path}: {msg}"


def is_db_error(err: BaseException) -> bool:
    """A duckdb exception, recognised without importing duckdb (the CLI's last line of defence)."""
    return any(c.__module__.split(".")[0] in ("duckdb", "_duckdb") for c in type(err).__mro__[:-1])
