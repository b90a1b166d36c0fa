"""Dependencies shared by every domain's endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from matchhub.keystore.material import KeyMaterial
from matchhub.kit.db import session_scope
from matchhub.settings import Settings


def get_session(request: Request) -> Iterator[Session]:
    """The request's one transaction: committed after the route returns, before the response
    is sent (``scope="function"``), rolled back if anything raised."""
    factory = cast(sessionmaker[Session], request.app.state.sessionmaker)
    with session_scope(factory) as session:
        yield session


def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def get_keys(request: Request) -> KeyMaterial:
    return cast(KeyMaterial, request.app.state.keys)


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
KeysDep = Annotated[KeyMaterial, Depends(get_keys)]
