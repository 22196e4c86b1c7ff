"""Independent work spread over the cores this process may use: chunks to a process pool, results in order.

A leaderboard build handles thousands of independent items (validating entries, writing entry pages).
A pool costs ~0.1 s to start, so each caller says from how many items per worker it pays off; below
that, on one core, or when the pool cannot start or dies (no /dev/shm, a killed worker), the work runs
in this process instead and gives the same results. Workers are forked where the platform allows, so
module-level state (and test patches) reach them.

`chunked_imap` hands each chunk's results over as soon as it (and every chunk before it) is done, so
a caller can store them and let them go instead of holding every result at once (the leaderboard
builder's table rows). The function and its extra arguments reach each worker once, when it starts
(inherited when forked), not with every chunk: the leaderboard's task registry cost ~0.5 ms to unpickle
per chunk of 8 entries.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from forgetbench.runtime.hardware import cores


def chunked_imap(fn, items: list, *args, min_per_worker: int, chunk: int, serial=None,
                 while_waiting=None) -> Iterator[list]:
    """The results of fn(chunk, *args) (a list; None counts as []) for consecutive chunks of `items`, in
    order, each as soon as it is done. `serial(chunk, *args)` replaces fn for the in-process path (e.g. to
    reuse state a worker cannot receive); `while_waiting()` runs here while the workers are busy, its
    errors ignored (a convenience: the caller meets them again itself). In this process (one core,
    few items, a failed pool) `serial` runs on the same chunks, so results come in the same steps either way.

    When the pool fails, the chunks not yet handed over are redone here: every chunk is handed over
    exactly once. When the caller stops early (an error in its own work), chunks not yet started are
    cancelled."""
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    done = 0  # chunks handed over
    n = min(cores(), 1 + len(items) // min_per_worker)
    for part in _pooled(fn, chunks, args, n, while_waiting) if n > 1 else ():
        done += 1
        yield part
    for c in chunks[done:]:
        yield (serial or fn)(c, *args) or []


def _pooled(fn, chunks: list, args: tuple, n: int, while_waiting) -> Iterator[list]:
    """The chunks' results from a pool of n workers, in order, until all are done or the pool fails (then
    it stops quietly: the caller redoes the rest)."""
    from concurrent.futures import ProcessPoolExecutor

    try:
        pool = ProcessPoolExecutor(max_workers=n, initializer=_install, initargs=(fn, args))
    except Exception:  # noqa: BLE001 - the pool cannot start
        return
    finished = False
    try:
        try:
            futures = [pool.submit(_call, c) for c in chunks]
        except Exception:  # noqa: BLE001 - the workers cannot start
            return
        _run_quietly(while_waiting)  # after the submits: the workers are forked by then
        for i, f in enumerate(futures):
            try:
                part = f.result() or []
            except Exception:  # noqa: BLE001 - the pool failed, not an item (fn reports its items' errors)
                return
            futures[i] = None  # the caller decides how long a result lives
            yield part
        finished = True
    finally:
        # The caller stopped early or the pool failed: do not wait for chunks nobody will take.
        pool.shutdown(wait=True, cancel_futures=not finished)


_work: tuple | None = None  # in a worker process: (fn, args) of the pool it serves (_install)


def _install(fn, args: tuple) -> None:
    global _work
    _work = (fn, args)
    # What the worker inherited from the parent (imported modules, the arguments) lives as long as the
    # worker: out of the cyclic GC's full passes, which walked it every time (~50 ms each, a few times
    # per thousand leaderboard entries checked).
    gc.freeze()


def _call(chunk: list):
    fn, args = _work
    return fn(chunk, *args)


def _run_quietly(fn) -> None:
    try:
        if fn is not None:
            fn()
    except Exception:  # noqa: BLE001
        pass


@contextmanager
def no_gc():
    """No cyclic GC in this block: storing thousands of received results (millions of acyclic dicts
    and lists) would trigger full cyclic-GC passes over everything so far, again and again (the
    leaderboard validator). Only for code that makes no reference cycles (they would live until the
    block ends). The pool's own thread unpickles results outside any such block: a caller keeping them
    freezes them out of the GC instead (gc.freeze)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
