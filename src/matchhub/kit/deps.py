"""Dependencies shared by every domain's endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from matchhub.audit.recorder import mark_recorded, record_accepted
from matchhub.keystore.material import KeyMaterial
from matchhub.kit.db import commit, rollback
from matchhub.kit.errors import MatchhubError, ServiceUnavailable
from matchhub.settings import Settings


def get_session(request: Request) -> Iterator[Session]:
    """The request's one transaction: the route's work and its audit record, committed after
    the route returns and before the response is sent (``scope="function"``), rolled back if
    anything raised. No audit record, no commit: the caller gets 503 and nothing was done."""
    factory = cast(sessionmaker[Session], request.app.state.sessionmaker)
    session = factory()
    try:
        yield session
        try:
            record_accepted(session, request)
        except MatchhubError:
            raise
        except Exception as exc:
            raise ServiceUnavailable(
                "the audit record could not be written; nothing was done",
                code="audit_unavailable",
            ) from exc
        commit(session)
        mark_recorded(request)
    except BaseException:
        rollback(session)
        raise
    finally:
        session.close()


def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def get_keys(request: Request) -> KeyMaterial:
    return cast(KeyMaterial, request.app.state.keys)


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
KeysDep = Annotated[KeyMaterial, Depends(get_keys)]
