"""Provider snapshots and rosters pushed over real mutual TLS, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import ssl
import threading
import time
from contextlib import ExitStack

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from matchhub.agency.connector.client import AgencyCredentials, make_client
from matchhub.agency.connector.push import (
    Chunk,
    PushClient,
    PushError,
    compact_chunks,
    ndjson_chunks,
    push,
)
from matchhub.protocol.kinds import AgencyKind
from matchhub.protocol.wire import COMPACT, NDJSON
from matchhub.uploads.models import Snapshot, SnapshotState, Upload, roster_rows, snapshot_rows
from matchhub.uploads.repository import UploadRepository
from tests.conftest import Hub, RunningServer
from tests.e2e.helpers import HANDSHAKE_REFUSED, national_ids, stored, tokens, visible_flags

LOAN = "bank.large_loan"


def _rows(toks: dict[str, str], ids: list[str], flags: list[str]) -> list[tuple[str, list[str]]]:
    return [(toks[i], flags) for i in ids]


def _push_loans(
    server: RunningServer,
    bank: AgencyCredentials,
    key_version: str,
    toks: dict[str, str],
    ids: list[str],
    *,
    chunk_rows: int = 50_000,
) -> None:
    """The bank's snapshot of large loans: these IDs, replacing its previous one."""
    with make_client(server.url, bank) as client:
        push(
            client,
            kind="flags",
            key_version=key_version,
            flags=[LOAN],
            rows=_rows(toks, ids, [LOAN]),
            chunk_rows=chunk_rows,
        )


def test_snapshots_replace_atomically_and_retries_are_idempotent(server: RunningServer) -> None:
    hub = server.hub
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    ids = national_ids(40, seed=1)
    toks = tokens(key, ids)
    first, second = ids[:30], ids[10:40]  # ids[:10] pay off their loans; ids[30:] take one

    with make_client(server.url, bank) as client:
        pusher = PushClient(client)
        upload = pusher.open("flags", key.version, [LOAN], len(first))
        chunks = list(ndjson_chunks(_rows(toks, first, [LOAN]), 7, roster=False))
        for chunk in chunks:
            receipt = pusher.put(upload["id"], chunk, NDJSON)
            assert receipt["duplicate"] is False
        again = pusher.put(upload["id"], chunks[2], NDJSON)  # a retry of an earlier chunk
        assert again["duplicate"] is True
        assert visible_flags(hub) == {}  # nothing is visible before the commit
        digest = pusher.send(upload["id"], lambda: iter(chunks), NDJSON, len(first)).sha256
        assert len(digest) == 64
        assert visible_flags(hub) == {stored(hub, toks[i]): {("rafidain", LOAN)} for i in first}

        push(
            client,
            kind="flags",
            key_version=key.version,
            flags=[LOAN],
            rows=_rows(toks, second, [LOAN]),
            chunk_rows=9,
            fmt="compact",
        )
    assert visible_flags(hub) == {stored(hub, toks[i]): {("rafidain", LOAN)} for i in second}
    # The replaced snapshot's rows are purged, not just hidden: by the commit's background
    # purge, as soon as no transaction from before the replacement is open.
    deadline = time.monotonic() + 20
    while True:
        with hub.session() as session:
            total = session.scalar(select(func.count()).select_from(snapshot_rows))
        if total == len(second) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert total == len(second)


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
            time.sleep(1.0)  # the after-commit purge retries meanwhile
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


def test_providers_and_flags_are_independent(server: RunningServer) -> None:
    hub = server.hub
    key = hub.matching_key()
    trade = hub.add_agency("trade-ministry", AgencyKind.trade)
    pension = hub.add_agency("pension-authority", AgencyKind.pension)
    ids = national_ids(12, seed=2)
    toks = tokens(key, ids)
    fuel, gen = "trade.fuel_station_owner", "trade.generator_owner"
    with make_client(server.url, trade) as client:
        push(
            client,
            kind="flags",
            key_version=key.version,
            flags=[fuel, gen],
            rows=[(toks[ids[0]], [fuel, gen]), (toks[ids[1]], [gen])],
            chunk_rows=1,
        )
    with make_client(server.url, pension) as client:
        push(
            client,
            kind="flags",
            key_version=key.version,
            flags=["pension.recipient"],
            rows=[(toks[ids[0]], ["pension.recipient"])],
            fmt="ndjson",
        )
    # A later trade snapshot of the generator flag alone leaves its fuel-station snapshot.
    with make_client(server.url, trade) as client:
        push(
            client, kind="flags", key_version=key.version, flags=[gen], rows=[(toks[ids[2]], [gen])]
        )
    assert visible_flags(hub) == {
        stored(hub, toks[ids[0]]): {
            ("trade-ministry", fuel),
            ("pension-authority", "pension.recipient"),
        },
        stored(hub, toks[ids[2]]): {("trade-ministry", gen)},
    }


def test_roster_versions_are_kept(server: RunningServer) -> None:
    hub = server.hub
    key = hub.matching_key()
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    toks = tokens(key, national_ids(20, seed=3))
    with make_client(server.url, molsa) as client:
        one = push(
            client,
            kind="roster",
            key_version=key.version,
            flags=[],
            rows=[(t, []) for t in list(toks.values())[:15]],
            chunk_rows=4,
        )
        two = push(
            client,
            kind="roster",
            key_version=key.version,
            flags=[],
            rows=[(t, []) for t in list(toks.values())[5:]],
            chunk_rows=4,
            fmt="ndjson",
        )
    v1, v2 = one.upload["roster_version"], two.upload["roster_version"]
    assert v1 is not None
    assert v2 > v1
    with hub.session() as session:
        states = dict(session.execute(select(Snapshot.id, Snapshot.state)).all())
        counts = dict(
            session.execute(
                select(roster_rows.c.snapshot_id, func.count()).group_by(roster_rows.c.snapshot_id)
            ).all()
        )
    assert states == {v1: "superseded", v2: "current"}
    assert counts == {v1: 15, v2: 15}


def test_interrupted_upload_resumes_to_the_same_result(server: RunningServer) -> None:
    hub = server.hub
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    ids = national_ids(50, seed=4)
    toks = tokens(key, ids)
    rows = _rows(toks, ids, [LOAN])

    def chunks() -> list[Chunk]:
        return list(compact_chunks(rows, [LOAN], 8, roster=False))

    with make_client(server.url, bank) as client:
        pusher = PushClient(client)
        upload = pusher.open("flags", key.version, [LOAN], len(rows))
        for chunk in chunks()[:3]:
            pusher.put(upload["id"], chunk, COMPACT)
    # The connector "crashed"; a new process resumes from what the broker says it has.
    with make_client(server.url, bank) as client:
        pusher = PushClient(client)
        status = pusher.status(upload["id"])
        assert (status["state"], status["next_seq"], status["chunks_received"]) == ("open", 3, 3)
        result = pusher.send(upload["id"], lambda: iter(chunks()), COMPACT, len(rows))
    assert result.upload["state"] == "committed"
    assert visible_flags(hub) == {stored(hub, toks[i]): {("rafidain", LOAN)} for i in ids}


def test_a_reader_never_sees_a_partial_snapshot(server: RunningServer) -> None:
    hub = server.hub
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    ids = national_ids(300, seed=5)
    toks = tokens(key, ids)
    old, new = ids[:100], ids[50:300]
    _push_loans(server, bank, key.version, toks, old)
    allowed = {len(old), len(new)}
    seen: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            with hub.session() as session:
                seen.append(
                    int(
                        session.scalar(
                            select(func.count())
                            .select_from(snapshot_rows)
                            .join(Snapshot, Snapshot.id == snapshot_rows.c.snapshot_id)
                            .where(Snapshot.state == SnapshotState.current)
                        )
                        or 0
                    )
                )

    reader = threading.Thread(target=read)
    reader.start()
    try:
        _push_loans(server, bank, key.version, toks, new, chunk_rows=10)
    finally:
        done.set()
        reader.join()
    assert len(seen) > 1, "the reader never ran alongside the push"
    assert set(seen) <= allowed, f"a reader saw a partial snapshot: {sorted(set(seen))}"
    assert visible_flags(hub) == {stored(hub, toks[i]): {("rafidain", LOAN)} for i in new}


# --- bad input: each a 4xx with a stable code, nothing stored, the snapshot untouched ----------


def _state(hub: Hub) -> tuple[object, ...]:
    with hub.session() as session:
        uploads = session.execute(
            select(Upload.state, Upload.rows_received).order_by(Upload.created_at)
        ).all()
        snaps = session.execute(select(Snapshot.id, Snapshot.state, Snapshot.rows)).all()
        rows = session.scalar(select(func.count()).select_from(snapshot_rows))
    return (tuple(uploads), tuple(snaps), rows)


def _expect(call: object, status: int, code: str) -> PushError:
    with pytest.raises(PushError) as caught:
        call()  # type: ignore[operator]
    assert (caught.value.status, caught.value.code) == (status, code), caught.value
    return caught.value


def test_bad_input_is_refused_and_changes_nothing(server: RunningServer) -> None:
    with ExitStack() as stack:
        _bad_input(server, stack)


def _bad_input(server: RunningServer, stack: ExitStack) -> None:
    hub = server.hub
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    auditor = hub.add_agency("auditor", AgencyKind.auditor)
    other = hub.add_agency("ashur", AgencyKind.bank)
    ids = national_ids(10, seed=6)
    toks = tokens(key, ids)
    good = _rows(toks, ids, [LOAN])

    def client(creds: AgencyCredentials) -> PushClient:
        return PushClient(stack.enter_context(make_client(server.url, creds)), attempts=1)

    p = client(bank)
    push(p.client, kind="flags", key_version=key.version, flags=[LOAN], rows=good)
    committed = _state(hub)
    line = json.dumps({"token": toks[ids[0]], "flags": [LOAN]}).encode() + b"\n"

    def chunk_with(body: bytes, seq: int = 0, media: str = NDJSON, rows: int = 3) -> object:
        def call() -> object:
            upload = p.open("flags", key.version, [LOAN], rows)
            return p.put(upload["id"], Chunk(seq, body, rows), media)

        return call

    upper = json.dumps({"token": toks[ids[1]].upper(), "flags": [LOAN]}).encode()
    raw = json.dumps({"token": ids[1], "flags": [LOAN]}).encode()
    _expect(chunk_with(upper), 422, "invalid_token")
    err = _expect(chunk_with(line + raw + b"\n"), 422, "raw_identifier_refused")
    assert ids[1] not in err.message
    err = _expect(chunk_with(line + line + b"{not json\n"), 422, "malformed_line")
    assert err.details == {"line": 3}
    _expect(
        chunk_with(json.dumps({"token": toks[ids[1]], "flags": ["pension.recipient"]}).encode()),
        422,
        "flag_not_declared",
    )
    _expect(chunk_with(line, seq=1), 409, "chunk_out_of_order")
    _expect(chunk_with(b"\x00" * 31, media=COMPACT), 422, "malformed_line")
    _expect(chunk_with(line, media="text/csv"), 422, "unsupported_format")
    _expect(chunk_with(line * 200_000, rows=200_000), 413, "chunk_too_large")
    _expect(lambda: p.open("flags", key.version, ["bank.no_such_flag"], 1), 422, "unknown_flag")
    _expect(
        lambda: p.open("flags", key.version, ["pension.recipient"], 1), 403, "flag_not_assertable"
    )
    _expect(lambda: p.open("flags", "v999", [LOAN], 1), 422, "unknown_key_version")
    _expect(lambda: client(molsa).open("flags", key.version, [LOAN], 1), 403, "scope_denied")
    _expect(lambda: client(auditor).open("flags", key.version, [LOAN], 1), 403, "scope_denied")
    _expect(lambda: p.open("roster", key.version, [], 1), 403, "scope_denied")

    roster = client(molsa)
    r = roster.open("roster", key.version, [], 1)
    _expect(lambda: roster.put(r["id"], Chunk(0, line, 1), NDJSON), 422, "roster_line_has_flags")

    u = p.open("flags", key.version, [LOAN], 1)
    p.put(u["id"], Chunk(0, line, 1), NDJSON)
    _expect(lambda: p.put(u["id"], Chunk(0, line + b"\n", 1), NDJSON), 409, "chunk_conflict")
    _expect(lambda: p.put(u["id"], Chunk(1, line, 1), NDJSON), 422, "too_many_rows")
    _expect(lambda: client(other).status(u["id"]), 404, "upload_not_found")
    _expect(lambda: p.commit(u["id"], 2, "0" * 64), 422, "row_count_mismatch")
    _expect(lambda: p.commit(u["id"], 1, "0" * 64), 422, "digest_mismatch")
    p.abort(u["id"])
    _expect(lambda: p.put(u["id"], Chunk(1, line, 1), NDJSON), 409, "upload_not_open")

    uploads, snaps, _rows_now = _state(hub)
    # The committed snapshot and its rows are exactly as they were.
    assert [s for s in snaps if s[1] == "current"] == [s for s in committed[1] if s[1] == "current"]
    assert visible_flags(hub) == {stored(hub, toks[i]): {("rafidain", LOAN)} for i in ids}
    assert all(state in {"open", "aborted", "committed"} for state, _ in uploads)


def test_chunk_after_commit_is_refused(server: RunningServer) -> None:
    hub = server.hub
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    toks = tokens(key, national_ids(3, seed=7))
    with make_client(server.url, bank) as http:
        result = push(
            http,
            kind="flags",
            key_version=key.version,
            flags=[LOAN],
            rows=[(t, [LOAN]) for t in toks.values()],
            fmt="ndjson",
        )
        p = PushClient(http, attempts=1)
        _expect(
            lambda: p.put(result.upload["id"], Chunk(1, b"", 0), NDJSON), 409, "upload_not_open"
        )
        _expect(lambda: p.commit(result.upload["id"], 3, result.sha256), 409, "upload_not_open")


def test_unauthenticated_upload_is_refused(server: RunningServer) -> None:
    hub = server.hub
    context = ssl.create_default_context(cafile=str(hub.paths.ca_cert))
    with (
        httpx.Client(base_url=server.url, verify=context) as client,
        pytest.raises(HANDSHAKE_REFUSED),
    ):
        client.post("/v1/uploads", json={})


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
