"""Replace an output folder only once its new content is complete (the leaderboard site).

`staged(out, owned)` yields a fresh sibling folder `.<name>.new-<pid>` to write into. When the block
finishes, the previous `out` is renamed aside, the new folder is renamed to `out` (two renames in the
same parent folder, so readers see either the old site or the new one, never a half-written one), the
entries of the old folder that the builder does not own (`owned(name)` is false: a user's own files)
are moved into the new one, and the old folder is removed. When the block raises, the new folder is
removed and `out` is untouched.

Simplification: the two renames are not one atomic exchange (renameat2 is Linux-only); a crash
between them leaves the old site as `.<name>.old-<pid>` next to `out`, nothing is lost.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from forgetbench.errors import UserError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _sweep(out: Path) -> None:
    """Remove staging folders left by builds that were killed (their process is gone)."""
    for p in out.parent.glob(f".{out.name}.new-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


@contextmanager
def staged(out: Path, owned: Callable[[str], bool]) -> Iterator[Path]:
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    new = out.parent / f".{out.name}.new-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _sweep(out)
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir()
    except OSError as e:
        raise UserError(f"cannot create the new site next to {out}: {e.strerror}") from e
    try:
        yield new
        _swap(new, out, owned)
    except BaseException as e:
        shutil.rmtree(new, ignore_errors=True)
        if isinstance(e, OSError):
            raise UserError(f"cannot write the site {out}: {e.strerror} ({e.filename}); the previous site is"
                            " untouched") from e
        raise


def _swap(new: Path, out: Path, owned: Callable[[str], bool]) -> None:
    if not out.exists():
        new.rename(out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    out.rename(old)
    try:
        new.rename(out)
    except OSError:
        old.rename(out)  # put the previous site back
        raise
    try:
        for child in old.iterdir():  # pointing --out at a populated folder loses nothing of the user's
            if not owned(child.name) and not (out / child.name).exists():
                child.rename(out / child.name)
    except OSError as e:
        raise UserError(f"the new site is in {out}, but moving your other files out of the previous one failed"
                        f" ({e.strerror}); they are still in {old}") from e
    shutil.rmtree(old, ignore_errors=True)
