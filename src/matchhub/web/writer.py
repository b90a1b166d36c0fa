"""Group commit for the entries of requests that change nothing.

A lookup, a ``whoami`` or a refused request has no transaction of its own worth committing;
what must be durable before its answer leaves is its audit entry. Appending each one in its own
transaction makes every such request hold the log's one lock across a commit (and its flush to
disk), so they queue behind each other. Here one thread appends whatever entries are waiting in
one transaction: under load, tens of requests share a lock and a commit.

The guarantee is the one the request transaction gives: :meth:`AuditWriter.record` returns only
once the entry has committed, and raises if it did not (the caller answers 503 and sends
nothing). A batch commits or fails as a whole; every waiter learns which. An entry the log
cannot hold (a value its columns refuse) fails its batch before the commit; the batch's entries
are then appended one at a time, so that entry's request alone is answered 503 and the others
commit as they would have: one caller's input never fails another's request. The request waits
on the event loop, not in a thread: a waiting request holds no worker thread.

A waiter is a plain asyncio future, told from the writer's thread with one
``call_soon_threadsafe`` a batch: a ``concurrent.futures.Future`` each (its own condition
variable) and ``asyncio.wrap_future`` (a callback and a wake-up of the loop each) were about
8 % of the event loop's samples under py-spy (docs/benchmarks.md). Whether an entry is in a batch
or was given up by its request first is decided under one lock, so an entry is either appended
and its waiter told, or left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from matchhub.audit import service
from matchhub.kit.db import commit, rollback
from matchhub.kit.errors import StaleGeneration

log = structlog.get_logger("matchhub.audit")

MAX_BATCH = 500
WAIT_SECONDS = 30.0


class AuditWriterStopped(RuntimeError):
    pass


@dataclass(eq=False)
class _Waiting:
    entry: service.PendingEntry
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[int]  # settled on ``loop`` only
    # Under the writer's lock: taken into a batch, or given up by its request before that.
    taken: bool = False
    abandoned: bool = False


Outcome = int | BaseException  # a sequence number, or why there is none


class AuditWriter:
    def __init__(
        self,
        factory: sessionmaker[Session],
        keys: service.AuditKeys,
        *,
        max_batch: int = MAX_BATCH,
        generation: Callable[[Session], int] | None = None,
        on_stale: Callable[[int], None] | None = None,
    ) -> None:
        self._factory = factory
        self._keys = keys
        self._max_batch = max_batch
        self._generation = generation
        self._on_stale = on_stale
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._claims = threading.Lock()  # _Waiting.taken and .abandoned
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._stopped = False
        # The writer's own connection, kept from batch to batch (see _transaction).
        self._connection: Connection | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Append what is already queued, then end; later :meth:`record` calls raise."""
        if self._stopped:
            return
        self._stopped = True
        self._queue.put(None)
        self._thread.join(timeout=WAIT_SECONDS)

    async def record(self, entry: service.PendingEntry, timeout: float = WAIT_SECONDS) -> int:
        """Append ``entry``; returns its sequence number once it has committed. A waiter that
        gives up (timeout, cancellation) before its batch starts is left out of the log, as its
        request is answered with an error."""
        if self._stopped:
            raise AuditWriterStopped("the audit writer has stopped")
        loop = asyncio.get_running_loop()
        waiting = _Waiting(entry, loop, loop.create_future())
        self._queue.put(waiting)
        try:
            # asyncio.timeout rather than wait_for, which (Python 3.11) wraps the wait in a task
            # of its own for every entry.
            async with asyncio.timeout(timeout):
                return await waiting.done
        except BaseException:
            with self._claims:
                # A batch not yet started leaves the entry out; one that has taken it commits it
                # (or not) without anyone waiting, as a request that failed after its record.
                waiting.abandoned = not waiting.taken
            raise

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            if self._connection is not None:
                self._connection.close()
            late: list[_Waiting] = []
            while True:  # whatever slipped in behind the stop is refused, not left waiting
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                if waiting is not None:
                    late.append(waiting)
            stopped = AuditWriterStopped("the audit writer has stopped")
            _tell([(w, stopped) for w in self._take(late)])

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            self._append(batch)
            if stopping:
                return

    def _take(self, batch: list[_Waiting]) -> list[_Waiting]:
        """The waiters still waiting, now taken: their requests can no longer leave them out."""
        with self._claims:
            taken = [w for w in batch if not w.abandoned]
            for waiting in taken:
                waiting.taken = True
        return taken

    def _append(self, batch: list[_Waiting]) -> None:
        batch = self._take(batch)
        if batch:
            self._settle(batch)

    def _settle(self, batch: list[_Waiting]) -> None:
        """Append ``batch`` (taken) in one transaction and tell each waiter how it went; if an
        entry of it cannot be written, each entry alone."""
        try:
            try:
                fresh, seqs, stale = self._transaction(batch)
            except _ConnectionLost:
                # The kept connection had died (the database restarted, an idle connection was
                # cut) before the commit was sent, so nothing of the batch committed: it is
                # tried once more on a new connection, as the pool's ping before each checkout
                # used to spare it the failure.
                log.warning("audit writer reconnecting", entries=len(batch))
                fresh, seqs, stale = self._transaction(batch)
        except _Unwritable as unwritable:
            if len(batch) > 1:
                # Nothing of the batch committed: each entry again in a transaction of its
                # own, which reads the log's state afresh, so the chain runs on unbroken past
                # the one that cannot be written.
                log.warning("audit batch held an unwritable entry", entries=len(batch))
                for waiting in batch:
                    self._settle([waiting])
                return
            log.exception("audit entry could not be written")
            _tell([(batch[0], unwritable.__cause__ or unwritable)])
            return
        except Exception as exc:  # every waiter answers 503; the thread lives on
            log.exception("audit batch failed", entries=len(batch))
            _tell([(w, exc) for w in batch])
            return
        outcomes: list[tuple[_Waiting, Outcome]] = [(w, StaleGeneration()) for w in stale]
        outcomes += zip(fresh, seqs, strict=True)
        _tell(outcomes)

    def _transaction(
        self, batch: list[_Waiting]
    ) -> tuple[list[_Waiting], list[int], list[_Waiting]]:
        """One batch in one transaction on the writer's own connection: the waiters appended
        and their sequence numbers, and those whose view generation is no longer the database's.

        The connection is kept between batches rather than taken from the pool each time, which
        pinged it first (``pool_pre_ping``, a round trip a batch) and reset it on return."""
        if self._connection is None or self._connection.invalidated or self._connection.closed:
            if self._connection is not None:
                self._connection.close()
            self._connection = self._factory.kw["bind"].connect()
        session = self._factory(bind=self._connection)
        try:
            try:
                stale: list[_Waiting] = []
                if any(w.entry.generation is not None for w in batch):
                    # Read in the batch's own transaction, holding it until the commit: an
                    # answer goes out only if no change it depends on has committed since its
                    # view was loaded. A writer with no way to read it appends none of them.
                    now = self._generation(session) if self._generation is not None else None
                    stale = [w for w in batch if w.entry.generation not in (None, now)]
                    batch = [w for w in batch if w.entry.generation in (None, now)]
                    if stale and now is not None and self._on_stale is not None:
                        self._on_stale(now)
                seqs = service.append_many(session, self._keys, [w.entry for w in batch])
            except (DataError, ValueError, TypeError) as exc:
                # A value the log cannot hold: one its columns refuse (PostgreSQL's data
                # exceptions: a NUL, a string past its column), or one with no canonical
                # JSON (no UTF-8, a float); not a failure of the database.
                rollback(session)
                raise _Unwritable() from exc
            except DBAPIError as exc:
                rollback(session)
                if exc.connection_invalidated:
                    raise _ConnectionLost() from exc
                raise
            except BaseException:
                rollback(session)
                raise
            commit(session)  # a failure here is never retried: the commit may have landed
        except BaseException:
            if session.in_transaction():
                rollback(session)
            raise
        finally:
            session.close()
        return batch, seqs, stale


def _tell(outcomes: list[tuple[_Waiting, Outcome]]) -> None:
    """Tell the waiters, from the writer's thread: one call into each waiting event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], Outcome]]]
    by_loop = defaultdict(list)
    for waiting, outcome in outcomes:
        by_loop[waiting.loop].append((waiting.done, outcome))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: no one is waiting any more
            loop.call_soon_threadsafe(_set_outcomes, settled)


def _set_outcomes(settled: list[tuple[asyncio.Future[int], Outcome]]) -> None:
    """On the waiters' loop: each future's result, unless its request stopped waiting."""
    for done, outcome in settled:
        if done.done():
            continue
        if isinstance(outcome, BaseException):
            done.set_exception(outcome)
        else:
            done.set_result(outcome)


class _ConnectionLost(Exception):
    """The writer's connection died before a batch's commit was sent."""


class _Unwritable(Exception):
    """An entry of a batch could not be written; nothing of the batch committed."""
