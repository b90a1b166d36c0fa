"""Engines and sessions.

The request owns the transaction: services only ``flush``; :func:`session_scope` commits once at
the boundary and rolls back on any exception, so an action and its audit record commit together
or not at all.

Routes that change nothing (lookups, ``whoami``, the GETs) use a second, read-only engine: its
connections run each statement on its own (autocommit: no ``BEGIN`` and ``ROLLBACK`` round trips
on the hot path) and the database itself refuses a write on them (PostgreSQL
``default_transaction_read_only``, SQLite ``PRAGMA query_only``). Under PostgreSQL's READ
COMMITTED each statement takes its own snapshot whether or not it runs inside a transaction, so
dropping the transaction around a read loses no consistency a reader had.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, read_only: bool = False, **kwargs: Any) -> Engine:
    # A statement's parameters are never put in an error's text: they are what callers sent
    # (an audit entry's body, a token), and the error reaches the log.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        _create_private(make_url(url).database)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        if read_only:
            # No BEGIN at all: each read is its own statement and never takes the write lock.
            event.listen(engine, "connect", _sqlite_query_only)
            return engine
        # pysqlite's own transaction handling would defer BEGIN; emit it ourselves. IMMEDIATE:
        # nearly every transaction writes (each request appends its audit entry), and a
        # deferred one that reads first cannot upgrade to a writer once another has committed
        # (SQLITE_BUSY at once, no waiting); taking the write lock up front makes them queue.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    if read_only:
        kwargs["isolation_level"] = "AUTOCOMMIT"
        kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}
        url = _primary_for_readers(url)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _create_private(database: str | None) -> None:
    """Create a new SQLite database file 0600, like the keys beside it: it holds the re-keyed
    tokens and the audit log. SQLite gives its -wal and -shm files the database file's mode."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    # No folder yet (FileNotFoundError): the connection will fail with SQLite's own message.
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _primary_for_readers(url: str) -> str:
    """libpq's ``target_session_attrs=read-write`` (the multi-host URL that finds the primary
    after a failover) asks each session whether it is read-only, and the read-only engine's
    sessions are, by design: ask those for ``primary`` (not in recovery) instead, which picks
    the same server."""
    parsed = make_url(url)
    if parsed.query.get("target_session_attrs") == "read-write":
        parsed = parsed.update_query_dict({"target_session_attrs": "primary"})
        return parsed.render_as_string(hide_password=False)
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_query_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


@contextmanager
def consistent_read(read_only: Engine) -> Iterator[Connection]:
    """One connection of the read-only engine inside one transaction with one snapshot of the
    database, for a read of several statements that must agree (the lookups' view). Its
    connections are autocommit, so the transaction is begun and ended here."""
    with read_only.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        else:
            connection.exec_driver_sql("BEGIN")  # deferred: a WAL snapshot from the first read
        try:
            yield connection
        finally:
            connection.exec_driver_sql("ROLLBACK")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the transaction has committed (never if it rolls back).

    For state outside the database that must follow it, such as an upload's running digest.
    """
    session.info.setdefault("after_commit", []).append(callback)


def commit(session: Session) -> None:
    session.commit()
    callbacks: list[Callable[[], None]] = session.info.pop("after_commit", [])
    for callback in callbacks:
        callback()


def rollback(session: Session) -> None:
    session.info.pop("after_commit", None)
    session.rollback()


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit if the block returns, roll back if it raises."""
    session = factory()
    try:
        yield session
        commit(session)
    except BaseException:
        rollback(session)
        raise
    finally:
        session.close()
