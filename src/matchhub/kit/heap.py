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
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG = 10_000
"""Net allocations of container objects before the youngest generation is collected (700 by
default; CPython 3.13 raised its own default to 2,000)."""


@contextmanager
def settled() -> Iterator[None]:
    """For a process's serving life: the objects that exist now frozen, the youngest generation
    collected every :data:`YOUNG` allocations; both undone on the way out (tests start many apps
    in one process)."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(YOUNG, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
