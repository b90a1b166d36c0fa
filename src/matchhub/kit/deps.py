"""Dependencies shared by every domain's endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Annotated, cast

from anyio import CancelScope
from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from matchhub.audit.recorder import (
    is_read_only,
    mark_recorded,
    record_accepted,
    record_through_writer,
)
from matchhub.audit.writer import StaleGeneration
from matchhub.keystore.material import KeyMaterial
from matchhub.kit.db import commit, rollback
from matchhub.kit.errors import MatchhubError, ServiceUnavailable
from matchhub.settings import Settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's one transaction: the route's work and its audit record, committed after
    the route returns and before the response is sent (``scope="function"``), rolled back if
    anything raised. No audit record, no commit: the caller gets 503 and nothing was done.

    A route marked :data:`~matchhub.audit.recorder.ReadOnly` reads through the read-only
    engine (the database refuses a write there; kit/db.py), and its record is appended by the
    group-commit writer; the answer still waits for the record.

    Making a session does no I/O, so it happens here on the event loop; the database work of
    the end (commit, or returning the connection) takes one hop to the thread pool, shielded
    so a cancelled request still gives its connection back."""
    read_only = is_read_only(request)
    state = request.app.state
    factory = cast(
        sessionmaker[Session], state.read_sessionmaker if read_only else state.sessionmaker
    )
    session = factory()
    try:
        yield session
    except BaseException:
        with CancelScope(shield=True):
            await run_in_threadpool(_discard, session)
        raise
    if read_only:
        # close() ends any work without committing and, unlike rollback(), leaves loaded
        # objects readable (a results stream reads its job after this). A session that never
        # touched the database (a lookup answered from the view) has nothing to give back.
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


@contextmanager
def audit_fail_closed() -> Iterator[None]:
    """No record, no answer: a failure to write the audit record (anything but a refusal of
    ours, or a view the hub moved past, which the caller handles) becomes 503."""
    try:
        yield
    except (MatchhubError, StaleGeneration):
        raise
    except Exception as exc:
        raise ServiceUnavailable(
            "the audit record could not be written; nothing was done", code="audit_unavailable"
        ) from exc


async def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


async def get_keys(request: Request) -> KeyMaterial:
    return cast(KeyMaterial, request.app.state.keys)


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
KeysDep = Annotated[KeyMaterial, Depends(get_keys)]
