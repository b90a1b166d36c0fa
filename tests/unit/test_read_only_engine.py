"""The read-only engine that lookups, ``whoami`` and the GETs read through (kit/db.py): the
database itself refuses a write on it, and it holds no snapshot between statements, so a
reader sees the last commit at its next statement."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError

from matchhub.identity.models import Agency
from matchhub.kit.db import make_engine
from tests.conftest import Hub


def _count(conn) -> int:  # type: ignore[no-untyped-def]
    return int(conn.execute(select(func.count()).select_from(Agency)).scalar_one())


def test_the_database_refuses_writes_through_the_read_only_engine(hub: Hub) -> None:
    reader = make_engine(hub.settings.sqlalchemy_url, read_only=True)
    try:
        with reader.connect() as conn:
            before = _count(conn)
            with pytest.raises(DBAPIError, match=r"(?i)read-only|readonly"):
                conn.execute(insert(Agency).values(code="sneaky", kind="welfare", name="x"))
        with reader.connect() as conn:
            assert _count(conn) == before
    finally:
        reader.dispose()


def test_a_reader_sees_a_commit_at_its_next_statement(hub: Hub) -> None:
    reader = make_engine(hub.settings.sqlalchemy_url, read_only=True)
    try:
        with reader.connect() as conn:
            before = _count(conn)
            hub.add_agency("later", "welfare")  # another connection commits meanwhile
            assert _count(conn) == before + 1
    finally:
        reader.dispose()
