"""The garbage collector's settings for a serving process.

CPython's cycle collector runs its youngest generation every 700 net allocations of container
objects, and now and then its oldest, which walks every object the process holds: the modules,
FastAPI's and SQLAlchemy's structures, the credentials. Under 50 clients' lookups the broker ran
its oldest generation about once every two seconds, each walk 100 ms or more with the interpreter
held, and every request paid for the collections its allocations set off: about a fifth of a
lookup's CPU (docs/benchmarks.md, "Broker CPU per lookup", its fourth round).

A server's long-lived objects are made at start and live until it stops. :func:`settled`
collects once after the start, moves every surviving object out of the collector's sight
(:func:`gc.freeze`) and lets the youngest generation grow to :data:`YOUNG` before a collection.
Cyclic garbage made while serving is still collected: later, in fewer and larger passes over the
objects made since the start only. Nothing is turned off.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG = 10_000
"""Net allocations of container objects before the youngest generation is collected (700 by
default; CPython 3.13 raised its own default to 2,000)."""


class _Settling:
    """The process's one setting, however many apps are serving in it: made when the first
    starts, undone when the last stops, whatever order they stop in (the collector's freeze
    and thresholds are the process's, not an app's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serving = 0
        self._before: tuple[int, int, int] = gc.get_threshold()

    def enter(self) -> None:
        with self._lock:
            self._serving += 1
            if self._serving > 1:
                gc.freeze()  # this app's start too
                return
            self._before = gc.get_threshold()
            gc.collect()
            gc.freeze()
            young, *older = self._before
            if young:  # 0: automatic collection was switched off, and stays off
                gc.set_threshold(max(YOUNG, young), *older)

    def leave(self) -> None:
        with self._lock:
            self._serving -= 1
            if self._serving == 0:
                gc.set_threshold(*self._before)
                gc.unfreeze()


_SETTLING = _Settling()


@contextmanager
def settled() -> Iterator[None]:
    """For a serving app's life: the objects that exist at its start frozen, the youngest
    generation collected every :data:`YOUNG` allocations; undone when the last app serving in
    the process stops (tests start many in one process, and their lives may overlap)."""
    _SETTLING.enter()
    try:
        yield
    finally:
        _SETTLING.leave()
