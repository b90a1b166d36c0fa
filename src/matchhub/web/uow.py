"""The request's unit of work: one transaction, and its audit record, per request.

This implements :class:`matchhub.kit.requests.UnitOfWork`, which the domains' endpoints ask
for through :data:`~matchhub.kit.requests.SessionDep`; the app installs it as
``app.state.unit_of_work``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import CancelScope
from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from matchhub.kit.db import commit, rollback
from matchhub.kit.requests import audit_fail_closed, is_read_only
from matchhub.web.recorder import (
    mark_recorded,
    record_accepted,
    record_answer,
    record_through_writer,
)


class RequestUnitOfWork:
    def __init__(
        self, writer_factory: sessionmaker[Session], reader_factory: sessionmaker[Session]
    ) -> None:
        self._writer_factory = writer_factory
        self._reader_factory = reader_factory

    @asynccontextmanager
    async def session(self, request: Request) -> AsyncIterator[Session]:
        """The request's one transaction: the route's work and its audit record, committed
        after the route returns and before the response is sent, rolled back if anything
        raised. No audit record, no commit: the caller gets 503 and nothing was done.

        A route marked :data:`~matchhub.kit.requests.ReadOnly` reads through the read-only
        engine (the database refuses a write there; kit/db.py), and its record is appended by
        the group-commit writer; the answer still waits for the record.

        Making a session does no I/O, so it happens here on the event loop; the database work
        of the end (commit, or returning the connection) takes one hop to the thread pool,
        shielded so a cancelled request still gives its connection back."""
        read_only = is_read_only(request)
        factory = self._reader_factory if read_only else self._writer_factory
        session = factory()
        try:
            yield session
        except BaseException:
            with CancelScope(shield=True):
                await run_in_threadpool(_discard, session)
            raise
        if read_only:
            # close() ends any work without committing and, unlike rollback(), leaves loaded
            # objects readable (a results stream reads its job after this). A session that
            # never touched the database (a lookup answered from the view) has nothing to give
            # back.
            if session.in_transaction():
                with CancelScope(shield=True):
                    await run_in_threadpool(session.close)
            else:
                session.close()
            with audit_fail_closed():
                await record_through_writer(request)
            return
        with CancelScope(shield=True):
            await run_in_threadpool(_commit_audited, session, request)

    def reader(self) -> Session:
        return self._reader_factory()

    async def record_answer(self, request: Request) -> int | None:
        return await record_answer(request)


def _commit_audited(session: Session, request: Request) -> None:
    try:
        session.flush()  # the route's own errors are its own, not the audit log's
        with audit_fail_closed():
            record_accepted(session, request)
        commit(session)
        mark_recorded(request)
    except BaseException:
        rollback(session)
        raise
    finally:
        session.close()


def _discard(session: Session) -> None:
    try:
        rollback(session)
    finally:
        session.close()
