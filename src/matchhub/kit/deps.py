"""Dependencies shared by every domain's endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from matchhub.audit.recorder import (
    is_read_only,
    mark_recorded,
    record_accepted,
    record_through_writer,
)
from matchhub.keystore.material import KeyMaterial
from matchhub.kit.db import commit, rollback
from matchhub.kit.errors import MatchhubError, ServiceUnavailable
from matchhub.settings import Settings


def get_session(request: Request) -> Iterator[Session]:
    """The request's one transaction: the route's work and its audit record, committed after
    the route returns and before the response is sent (``scope="function"``), rolled back if
    anything raised. No audit record, no commit: the caller gets 503 and nothing was done.

    A route marked :data:`~matchhub.audit.recorder.ReadOnly` has its transaction rolled back
    (so a write there could never commit) and its record appended by the group-commit writer;
    the answer still waits for the record."""
    factory = cast(sessionmaker[Session], request.app.state.sessionmaker)
    session = factory()
    try:
        yield session
        if is_read_only(request):
            # close() ends the transaction without committing and, unlike rollback(), leaves
            # loaded objects readable (a results stream reads its job after this).
            session.close()
            _audited(record_through_writer, request)
            return
        _audited(record_accepted, session, request)
        commit(session)
        mark_recorded(request)
    except BaseException:
        rollback(session)
        raise
    finally:
        session.close()


def _audited(record: Callable[..., None], *args: Any) -> None:
    try:
        record(*args)
    except MatchhubError:
        raise
    except Exception as exc:
        raise ServiceUnavailable(
            "the audit record could not be written; nothing was done",
            code="audit_unavailable",
        ) from exc


async def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


async def get_keys(request: Request) -> KeyMaterial:
    return cast(KeyMaterial, request.app.state.keys)


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
KeysDep = Annotated[KeyMaterial, Depends(get_keys)]
