"""Uploads where only a process shows the behaviour: a refused TLS handshake, and PostgreSQL's
partitions under concurrent readers (SQLite has none: those tests say so and skip)."""

from __future__ import annotations

import ssl
import time

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from matchhub.protocol.kinds import AgencyKind
from matchhub.uploads.models import Snapshot, SnapshotState, snapshot_rows
from matchhub.uploads.repository import UploadRepository
from matchhub.uploads.service import purge_unreachable
from tests.api.test_uploads import LOAN, _push_loans
from tests.conftest import RunningServer
from tests.e2e.helpers import (
    assert_refused_at_handshake,
    national_ids,
    stored,
    tokens,
    visible_flags,
)


def test_a_transaction_from_before_a_replacement_keeps_the_replaced_rows(
    server: RunningServer,
) -> None:
    """PostgreSQL: a statement that began before a replacing commit may still read the replaced
    snapshot's partition, so it is dropped only once every transaction older than the moment a
    purge pass saw the replacement has ended. (SQLite readers keep deleted rows in their WAL
    snapshot and never lose a table: there the rows go at once, as the test above shows.)"""
    hub = server.hub
    if not hub.settings.database_url:
        pytest.skip("PostgreSQL partitions only")
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    ids = national_ids(20, seed=5)
    toks = tokens(key, ids)

    def replace(rows: list[str]) -> None:
        _push_loans(server, bank, key.version, toks, rows, chunk_rows=8)

    def snapshot(snapshot_id: int) -> tuple[str, object, int]:
        with hub.session() as session:
            found = session.get(Snapshot, snapshot_id)
            assert found is not None
            rows = session.scalar(
                select(func.count())
                .select_from(snapshot_rows)
                .where(snapshot_rows.c.snapshot_id == snapshot_id)
            )
            return found.state, found.replaced_seen_at, int(rows or 0)

    replace(ids[:12])
    with hub.session() as session:
        first = session.scalars(
            select(Snapshot.id).where(Snapshot.state == SnapshotState.current)
        ).one()
    reader = create_engine(str(hub.settings.database_url))
    try:
        with reader.connect() as old:
            old.execute(text("SELECT 1"))  # a transaction from before the replacement, open
            replace(ids[8:])
            # A purge pass run here and now (not a sleep hoping the after-commit one ran): it
            # must stamp the replacement and leave the rows the open transaction may read.
            with hub.session() as session:
                purge_unreachable(session)
            state, seen, rows = snapshot(first)
            assert (state, rows) == ("superseded", 12)
            assert seen is not None
            old.rollback()
        deadline = time.monotonic() + 20
        while snapshot(first)[0] != "purged" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert snapshot(first)[0] == "purged"
        assert snapshot(first)[2] == 0
    finally:
        reader.dispose()
    assert visible_flags(hub) == {stored(hub, toks[i]): {("rafidain", LOAN)} for i in ids[8:]}


def test_unauthenticated_upload_is_refused(server: RunningServer) -> None:
    hub = server.hub
    good = hub.add_agency("rafidain", AgencyKind.bank)
    context = ssl.create_default_context(cafile=str(hub.paths.ca_cert))

    def without_certificate() -> None:
        with httpx.Client(base_url=server.url, verify=context) as client:
            client.post("/v1/uploads", json={})

    assert_refused_at_handshake(server.url, good, without_certificate)


def test_a_partition_drop_gives_way_to_a_reader(server: RunningServer) -> None:
    """PostgreSQL: dropping a partition locks the whole partitioned table, and every reader
    after it would queue behind a DROP waiting for one long reader (a view load, a cold match
    job). The DROP waits a moment, then gives way, for a later purge pass."""
    hub = server.hub
    if not hub.settings.database_url:
        pytest.skip("PostgreSQL partitions only")
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    toks = tokens(key, national_ids(6, seed=9))
    _push_loans(server, bank, key.version, toks, list(toks))
    engine = create_engine(str(hub.settings.database_url))
    try:
        with engine.connect() as reader, Session(engine) as session:
            # Should the DROP ever wait for the reader again, fail in 10 s rather than hang.
            session.execute(text("SET statement_timeout = '10s'"))
            snapshot = session.scalars(
                select(Snapshot).where(Snapshot.state == SnapshotState.current)
            ).one()
            reader.execute(text("LOCK TABLE snapshot_rows IN ACCESS SHARE MODE"))
            started = time.monotonic()
            assert UploadRepository(session).delete_rows(snapshot) is None
            assert time.monotonic() - started < 5
            reader.rollback()  # the reader is done
            assert UploadRepository(session).delete_rows(snapshot) == len(toks)
            session.rollback()  # a test of the lock, not a purge: keep the rows
        with hub.session() as session:
            held = session.scalar(select(func.count()).select_from(snapshot_rows))
        assert held == len(toks)
    finally:
        engine.dispose()
