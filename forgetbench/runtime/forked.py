"""Jobs run in forked child processes, at most `n` at a time, each seeing this process's memory as it was
when its child was forked: its input is never pickled.

For work whose input only this process can read, in pieces: the leaderboard's pages, whose rows come
from a DuckDB file the build keeps open for writing (DuckDB locks it against every other process). A
job is made by its maker just before its child is forked, so the maker can read the job's input then,
and this process lets go of it once the child has it (fanout.chunked_imap, by contrast, pickles every
item to a pool).

A job that fails in its child (an exception, a killed child) is made and run again here once the
others are done, so its error is raised in this process, with its traceback. Without fork (Windows,
macOS' default) or with n == 1 every job runs here, in order. Simplifications: a job's result is what
it leaves behind (files); children inherit this process's state, so a job must not use what cannot
cross a fork (open DuckDB connections, threads).
"""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Callable, Iterable

Maker = Callable[[], Callable[[], None]]


def run(makers: Iterable[Maker], n: int) -> None:
    """maker()() for every maker, in forked children (n at a time) when n > 1 and fork exists."""
    if n <= 1 or not hasattr(os, "fork"):
        for make in makers:
            make()()
        return
    from multiprocessing.connection import wait

    running: dict[int, tuple[int, Maker]] = {}  # read end of the child's pipe -> (pid, maker)
    failed: list[Maker] = []

    def reap() -> None:
        for fd in wait(list(running)):  # readable = EOF: the child has exited
            pid, make = running.pop(fd)
            os.close(fd)
            if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
                failed.append(make)

    try:
        for make in makers:
            while len(running) >= n:
                reap()
            job = make()
            pid, fd = _fork(job)
            running[fd] = (pid, make)
            del job  # the child has its own copy now
        while running:
            reap()
    finally:
        for fd, (pid, _) in running.items():  # only after an error here: leave no child behind
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(fd)
    for make in failed:
        make()()


def _fork(job: Callable[[], None]) -> tuple[int, int]:
    """Start a child running job(); returns its pid and the read end of a pipe that ends when it exits."""
    # Objects that exist now are left alone by the child's cyclic GC, whose passes would otherwise write
    # to (and so copy) every inherited page they visit.
    gc.freeze()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: os._exit, so nothing of the parent's (atexit, finalizers, buffers) runs
        code = 1
        try:
            os.close(r)
            job()
            code = 0
        finally:
            os._exit(code)
    gc.unfreeze()
    os.close(w)
    return pid, r
