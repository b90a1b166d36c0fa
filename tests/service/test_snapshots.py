"""Snapshot states: one enum, held to it by the database, and which snapshots are current
asked in one place (uploads/repository.py ``SnapshotRepository``). Service tier: each test
works in a transaction rolled back at the end."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta
from importlib import import_module

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from matchhub.identity import service as identity
from matchhub.keystore import service as keystore
from matchhub.keystore.material import load_key_material
from matchhub.keystore.rekey import Rekeyer, Sealer
from matchhub.kit.db import commit
from matchhub.lookups.models import ViewGeneration
from matchhub.protocol.kinds import AgencyKind
from matchhub.uploads import service as uploads
from matchhub.uploads.digests import RunningDigests
from matchhub.uploads.models import Snapshot, SnapshotState
from matchhub.uploads.repository import (
    RosterRows,
    SnapshotRepository,
    SnapshotRows,
    UploadRepository,
)
from matchhub.uploads.schemas import CommitUpload, OpenUpload
from tests.fixtures.database import ServiceDatabase

LOAN = "bank.large_loan"


class Bank:
    """A provider registered in the session's transaction, pushing snapshots through the
    upload service as its endpoints do."""

    def __init__(self, session: Session, db: ServiceDatabase) -> None:
        self.session = session
        paths = db.settings.paths
        issued = identity.register_agency(
            session,
            keystore.load_ca(paths),
            db.settings.hub_name,
            code="rafidain",
            kind=AgencyKind.bank,
            name="TEST-ONLY Rafidain",
        )
        self.principal = identity.authenticate(session, issued.certificate, db.settings.hub_name)
        self.version = keystore.register_matching_key_version(session)
        broker_key = load_key_material(paths).broker_key.value
        self.ctx = uploads.UploadContext(
            Rekeyer(broker_key), Sealer(broker_key), RunningDigests(), timedelta(hours=1)
        )

    def push(self, count: int) -> int:
        """A committed snapshot of ``count`` flagged tokens; its id."""
        body = b"".join(
            json.dumps({"token": secrets.token_hex(32), "flags": [LOAN]}).encode() + b"\n"
            for _ in range(count)
        )
        upload = uploads.open_upload(
            self.session,
            self.principal,
            OpenUpload(kind="flags", key_version=self.version, flags=[LOAN], expected_rows=count),
            self.ctx,
        )
        commit(self.session)
        uploads.put_chunk(
            self.session,
            self.principal,
            upload.id,
            0,
            body=body,
            media_type="application/x-ndjson",
            ctx=self.ctx,
        )
        commit(self.session)
        request = CommitUpload(rows=count, sha256=hashlib.sha256(body).hexdigest())
        uploads.commit_upload(self.session, self.principal, upload.id, request, self.ctx)
        commit(self.session)
        (snapshot,) = SnapshotRepository(self.session).current(
            self.principal.agency_id, "flag", [LOAN]
        )
        return snapshot.id


@pytest.fixture
def bank(db_session: Session, service_database: ServiceDatabase) -> Bank:
    return Bank(db_session, service_database)


def _generation(session: Session) -> int:
    return int(session.scalar(select(ViewGeneration.generation)) or 0)


def test_which_snapshots_are_current(db_session: Session, bank: Bank) -> None:
    first = bank.push(3)
    second = bank.push(2)
    snapshots = SnapshotRepository(db_session)
    assert db_session.get(Snapshot, first).state is SnapshotState.superseded
    assert [s.id for s in snapshots.current(bank.principal.agency_id, "flag", [LOAN])] == [second]
    assert [(s.id, kind) for s, kind in snapshots.current_sources([LOAN])] == [(second, "bank")]
    assert [r.id for r in snapshots.current_listing()] == [second]
    assert snapshots.no_longer_current([first, second]) == [first]
    assert snapshots.count_current() == {"flag": 1}
    assert snapshots.current_roster(bank.principal.agency_id) is None


def test_the_generation_moves_when_a_snapshot_enters_or_leaves_current(
    db_session: Session, bank: Bank
) -> None:
    """Migration 0009 rebuilt the table on SQLite; the triggers of 0008 came back with it."""
    first = bank.push(1)
    before = _generation(db_session)
    db_session.execute(text("UPDATE snapshots SET rows = rows WHERE id = :id"), {"id": first})
    assert _generation(db_session) == before  # not a change a lookup sees
    bank.push(1)  # replaces `first`: one leaves current, one enters
    assert _generation(db_session) > before


def test_the_database_refuses_an_unknown_state(db_session: Session, bank: Bank) -> None:
    snapshot_id = bank.push(1)
    with pytest.raises(IntegrityError), db_session.begin_nested():
        db_session.execute(
            text("UPDATE snapshots SET state = 'curent' WHERE id = :id"), {"id": snapshot_id}
        )
    # The model refuses it before the database sees it.
    misspelt = update(Snapshot).where(Snapshot.id == snapshot_id).values(state="curent")
    with pytest.raises(StatementError, match="curent"):
        db_session.execute(misspelt)
    assert db_session.scalar(select(Snapshot.state).where(Snapshot.id == snapshot_id)) == (
        SnapshotState.current
    )


def test_the_states_are_the_migrations() -> None:
    """The enum and migration 0009's CHECK constraint name the same states."""
    migration = import_module("matchhub.migrations.versions.0009_snapshot_state_check")
    assert tuple(SnapshotState) == migration.STATES


@pytest.mark.parametrize("pages", [1, SnapshotRows.PIECE_PAGES])
def test_rows_are_read_out_whole_whatever_the_pieces(
    db_session: Session, monkeypatch: pytest.MonkeyPatch, pages: int
) -> None:
    """A segment is built from the rows read out (on PostgreSQL a page range at a time): every
    row of the snapshot comes back once, a roster's with its own ordinal, none of another's."""
    monkeypatch.setattr(SnapshotRows, "PIECE_PAGES", pages)
    rows = 3000  # dozens of pages of either table
    tokens = [secrets.token_bytes(16) for _ in range(rows)]
    repo = UploadRepository(db_session)
    for snapshot_id in (9_000_001, 9_000_002):  # a roster and another around it
        repo.create_partition(snapshot_id, "roster")
        repo.insert_roster_rows(RosterRows(snapshot_id, 0, b"".join(tokens), bytes(48 * rows)))
        repo.attach_partition(snapshot_id, "roster")  # as its commit does
    repo.create_partition(9_000_003, "flag")
    repo.insert_rows(9_000_003, b"".join(tokens))
    repo.attach_partition(9_000_003, "flag")
    read = SnapshotRows(db_session)
    ordinals, stored = read.roster_tokens(9_000_001)
    found = [stored[i : i + 16] for i in range(0, len(stored), 16)]
    pairs = zip(ordinals.tolist(), found, strict=True)
    assert sorted(pairs) == list(enumerate(tokens))
    provider = read.provider_tokens(9_000_003)
    assert sorted(provider[i : i + 16] for i in range(0, len(provider), 16)) == sorted(tokens)
