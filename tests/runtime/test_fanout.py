"""forgetbench.runtime.fanout: chunks of independent work over a process pool, results in order. A pool
that dies part-way must not lose or repeat a chunk (the leaderboard builder stores each chunk's rows as
it arrives), and a caller that stops early must not wait for the chunks it will not take."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from forgetbench.runtime import fanout

FORK = multiprocessing.get_start_method() == "fork"
PARENT = os.getpid()


def _square(chunk: list[int], offset: int) -> list[tuple[int, int]]:
    return [(x, x * x + offset) for x in chunk]


def _dies_on_7(chunk: list[int], offset: int) -> list[tuple[int, int]]:
    if 7 in chunk and os.getpid() != PARENT:  # a killed worker (out of memory, say), not an item error
        os._exit(1)
    return [(x, x * x + offset, os.getpid() == PARENT) for x in chunk]


def test_imap_gives_the_chunks_in_order_serial_or_pooled(monkeypatch):
    items = list(range(23))
    want = [(x, x * x + 1) for x in items]
    for min_per_worker in (10**9, 1):  # in this process / over a pool
        parts = list(fanout.chunked_imap(_square, items, 1, min_per_worker=min_per_worker, chunk=4))
        assert [len(p) for p in parts] == [4, 4, 4, 4, 4, 3]
        assert [x for p in parts for x in p] == want


@pytest.mark.skipif(not FORK or fanout.cores() < 2, reason="needs a forked pool of 2+ workers")
def test_a_pool_that_dies_hands_over_every_chunk_exactly_once():
    items = list(range(40))
    parts = list(fanout.chunked_imap(_dies_on_7, items, 0, min_per_worker=1, chunk=2))
    got = [x for p in parts for x in p]
    assert [x[:2] for x in got] == [(x, x * x) for x in items]  # none lost, none twice, in order
    assert got[0][2] is False  # the first chunks came from the pool
    assert all(x[2] for x in got if x[0] >= 6)  # from the chunk the worker died on: redone here


@pytest.mark.skipif(not FORK or fanout.cores() < 2, reason="needs a forked pool of 2+ workers")
def test_a_caller_that_stops_early_gets_its_error_not_the_fallback():
    seen = []
    with pytest.raises(RuntimeError, match="caller"):
        for part in fanout.chunked_imap(_square, list(range(400)), 0, min_per_worker=1, chunk=2):
            seen += part
            if len(seen) >= 4:
                raise RuntimeError("caller")
    assert [x for x, _ in seen] == [0, 1, 2, 3]


class _Unpicklable:
    """An argument that cannot be pickled: a pool that sent it with every chunk would fail."""

    def __init__(self, offset: int):
        self.offset = offset

    def __reduce__(self):
        raise TypeError("not picklable")


def _square_by(chunk: list[int], arg: _Unpicklable) -> list[tuple[int, int, bool]]:
    return [(x, x * x + arg.offset, os.getpid() == PARENT) for x in chunk]


@pytest.mark.skipif(not FORK or fanout.cores() < 2, reason="needs a forked pool of 2+ workers")
def test_forked_workers_get_the_arguments_once_not_per_chunk():
    """The function and its arguments reach a forked worker when it starts (the leaderboard's task
    registry was unpickled once per chunk of 8 entries): an argument that cannot be pickled works."""
    parts = list(fanout.chunked_imap(_square_by, list(range(40)), _Unpicklable(3), min_per_worker=1, chunk=4))
    got = [x for p in parts for x in p]
    assert [x[:2] for x in got] == [(x, x * x + 3) for x in range(40)]
    assert not any(x[2] for x in got)  # all from the pool: nothing fell back to this process
