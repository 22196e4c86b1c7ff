"""Independent work spread over the cores this process may use: chunks to a process pool, results in order.

A leaderboard build handles thousands of independent items (validating entries, writing entry pages).
A pool costs ~0.1 s to start, so each caller says from how many items per worker it pays off; below
that, on one core, or when the pool cannot start or dies (no /dev/shm, a killed worker), the work runs
in this process instead and gives the same results. Workers are forked where the platform allows, so
module-level state (and test patches) reach them.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager

from forgetbench.runtime.hardware import cores


def chunked_map(fn, items: list, *args, min_per_worker: int, chunk: int, serial=None, while_waiting=None) -> list:
    """fn(items[i:i + chunk], *args) for every chunk, results concatenated in order (None counts as []).

    `serial(items, *args)` replaces fn for the in-process path (e.g. to reuse state a worker cannot
    receive); `while_waiting()` runs here while the workers are busy, its errors ignored (a convenience:
    the caller meets them again itself)."""
    n = min(cores(), 1 + len(items) // min_per_worker)
    if n > 1:
        from concurrent.futures import ProcessPoolExecutor

        chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
        try:
            with _no_gc(), ProcessPoolExecutor(max_workers=n) as pool:
                futures = [pool.submit(fn, c, *args) for c in chunks]
                _run_quietly(while_waiting)  # after the submits: the workers are forked by then
                return [x for f in futures for x in (f.result() or [])]
        except Exception:  # noqa: BLE001 - the pool failed, not an item: redo it all here
            pass
    return (serial or fn)(items, *args) or []


def _run_quietly(fn) -> None:
    try:
        if fn is not None:
            fn()
    except Exception:  # noqa: BLE001
        pass


@contextmanager
def _no_gc():
    """Receiving thousands of parsed files (millions of acyclic dicts and lists) would trigger full
    cyclic-GC passes over everything received so far, again and again; nothing here makes cycles."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
