"""Provider snapshots and rosters pushed to the app in process, on SQLite and PostgreSQL (the
TLS handshake and PostgreSQL's partitions under readers: tests/e2e/test_uploads_postgres.py)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from contextlib import ExitStack

import pytest
from sqlalchemy import func, select

from matchhub.agency.connector.client import AgencyCredentials
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
from matchhub.uploads.service import purge_unreachable, purges_waiting
from tests.conftest import Hub, InProcessApi, RunningServer
from tests.e2e.helpers import national_ids, stored, tokens, visible_flags

LOAN = "bank.large_loan"


def _rows(toks: dict[str, str], ids: list[str], flags: list[str]) -> list[tuple[str, list[str]]]:
    return [(toks[i], flags) for i in ids]


def _push_loans(
    api: InProcessApi | RunningServer,
    bank: AgencyCredentials,
    key_version: str,
    toks: dict[str, str],
    ids: list[str],
    *,
    chunk_rows: int = 50_000,
) -> None:
    """The bank's snapshot of large loans: these IDs, replacing its previous one."""
    with api.client(bank) as client:
        push(
            client,
            kind="flags",
            key_version=key_version,
            flags=[LOAN],
            rows=_rows(toks, ids, [LOAN]),
            chunk_rows=chunk_rows,
        )


def test_snapshots_replace_atomically_and_retries_are_idempotent(api: InProcessApi) -> None:
    hub = api.hub
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    ids = national_ids(40, seed=1)
    toks = tokens(key, ids)
    first, second = ids[:30], ids[10:40]  # ids[:10] pay off their loans; ids[30:] take one

    with api.client(bank) as client:
        pusher = PushClient(client)
        upload = pusher.open("flags", key.version, [LOAN], len(first))
        chunks = list(ndjson_chunks(_rows(toks, first, [LOAN]), 7, roster=False))
        for chunk in chunks:
            receipt = pusher.put(upload["id"], chunk, NDJSON)
            assert receipt["duplicate"] is False
        again = pusher.put(upload["id"], chunks[2], NDJSON)  # a retry of an earlier chunk
        assert again["duplicate"] is True
        assert visible_flags(hub) == {}  # nothing is visible before the commit
        # The first commit form, the SHA-256 of the bodies: this one process received every
        # chunk (the retry fed its running digest nothing twice), so it can check it.
        bodies = hashlib.sha256(b"".join(c.body for c in chunks)).hexdigest()
        assert pusher.commit(upload["id"], len(first), sha256=bodies)["state"] == "committed"
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


def test_providers_and_flags_are_independent(api: InProcessApi) -> None:
    hub = api.hub
    key = hub.matching_key()
    trade = hub.add_agency("trade-ministry", AgencyKind.trade)
    pension = hub.add_agency("pension-authority", AgencyKind.pension)
    ids = national_ids(12, seed=2)
    toks = tokens(key, ids)
    fuel, gen = "trade.fuel_station_owner", "trade.generator_owner"
    with api.client(trade) as client:
        push(
            client,
            kind="flags",
            key_version=key.version,
            flags=[fuel, gen],
            rows=[(toks[ids[0]], [fuel, gen]), (toks[ids[1]], [gen])],
            chunk_rows=1,
        )
    with api.client(pension) as client:
        push(
            client,
            kind="flags",
            key_version=key.version,
            flags=["pension.recipient"],
            rows=[(toks[ids[0]], ["pension.recipient"])],
            fmt="ndjson",
        )
    # A later trade snapshot of the generator flag alone leaves its fuel-station snapshot.
    with api.client(trade) as client:
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


def test_roster_versions_are_kept(api: InProcessApi) -> None:
    hub = api.hub
    key = hub.matching_key()
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    toks = tokens(key, national_ids(20, seed=3))
    with api.client(molsa) as client:
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


def test_interrupted_upload_resumes_to_the_same_result(api: InProcessApi) -> None:
    hub = api.hub
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    ids = national_ids(50, seed=4)
    toks = tokens(key, ids)
    rows = _rows(toks, ids, [LOAN])

    def chunks() -> list[Chunk]:
        return list(compact_chunks(rows, [LOAN], 8, roster=False))

    with api.client(bank) as client:
        pusher = PushClient(client)
        upload = pusher.open("flags", key.version, [LOAN], len(rows))
        for chunk in chunks()[:3]:
            pusher.put(upload["id"], chunk, COMPACT)
    # The connector "crashed"; a new process resumes from what the broker says it has.
    with api.client(bank) as client:
        pusher = PushClient(client)
        status = pusher.status(upload["id"])
        assert (status["state"], status["next_seq"], status["chunks_received"]) == ("open", 3, 3)
        result = pusher.send(upload["id"], lambda: iter(chunks()), COMPACT, len(rows))
    assert result.upload["state"] == "committed"
    assert visible_flags(hub) == {stored(hub, toks[i]): {("rafidain", LOAN)} for i in ids}


def test_a_reader_never_sees_a_partial_snapshot(api: InProcessApi) -> None:
    hub = api.hub
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    ids = national_ids(300, seed=5)
    toks = tokens(key, ids)
    old, new = ids[:100], ids[50:300]
    _push_loans(api, bank, key.version, toks, old)
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
        _push_loans(api, bank, key.version, toks, new, chunk_rows=10)
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


def _purged(hub: Hub) -> None:
    """Purge what no reader can see, polling while an older transaction may still read it."""
    deadline = time.monotonic() + 30
    while True:
        with hub.session() as session:
            purge_unreachable(session)
            if not purges_waiting(session):
                return
        assert time.monotonic() < deadline, "rows still waiting to be purged"
        time.sleep(0.05)


def _expect(call: object, status: int, code: str) -> PushError:
    with pytest.raises(PushError) as caught:
        call()  # type: ignore[operator]
    assert (caught.value.status, caught.value.code) == (status, code), caught.value
    return caught.value


def test_bad_input_is_refused_and_changes_nothing(api: InProcessApi) -> None:
    with ExitStack() as stack:
        _bad_input(api, stack)


def _bad_input(api: InProcessApi, stack: ExitStack) -> None:
    hub = api.hub
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    auditor = hub.add_agency("auditor", AgencyKind.auditor)
    other = hub.add_agency("ashur", AgencyKind.bank)
    ids = national_ids(10, seed=6)
    toks = tokens(key, ids)
    good = _rows(toks, ids, [LOAN])

    def client(creds: AgencyCredentials) -> PushClient:
        return PushClient(stack.enter_context(api.client(creds)))

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
    _expect(lambda: p.commit(u["id"], 1, sha256="0" * 64), 422, "digest_mismatch")
    _expect(lambda: p.commit(u["id"], 1), 422, "digest_required")
    p.abort(u["id"])
    _expect(lambda: p.put(u["id"], Chunk(1, line, 1), NDJSON), 409, "upload_not_open")

    _purged(hub)  # the aborted upload's one row (refused chunks never stored any)
    uploads, snaps, rows_now = _state(hub)
    # The committed snapshot and its rows are exactly as they were, and no other row is left.
    assert [s for s in snaps if s[1] == "current"] == [s for s in committed[1] if s[1] == "current"]
    assert rows_now == committed[2] == len(ids)
    assert visible_flags(hub) == {stored(hub, toks[i]): {("rafidain", LOAN)} for i in ids}
    assert all(state in {"open", "aborted", "committed"} for state, _ in uploads)


def test_chunk_after_commit_is_refused(api: InProcessApi) -> None:
    hub = api.hub
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    toks = tokens(key, national_ids(3, seed=7))
    with api.client(bank) as http:
        result = push(
            http,
            kind="flags",
            key_version=key.version,
            flags=[LOAN],
            rows=[(t, [LOAN]) for t in toks.values()],
            fmt="ndjson",
        )
        p = PushClient(http)
        _expect(
            lambda: p.put(result.upload["id"], Chunk(1, b"", 0), NDJSON), 409, "upload_not_open"
        )
        # Another commit (not the same one repeated: that answers the committed upload).
        _expect(
            lambda: p.commit(result.upload["id"], 2, result.chunks_sha256), 409, "upload_not_open"
        )


def test_a_repeated_open_and_commit_answer_the_same_upload(api: InProcessApi) -> None:
    """Blind retries do nothing twice (issue 13, item 6): an open sent again with its
    Idempotency-Key answers the upload it opened, a commit sent again with the same rows and
    digest answers the committed upload; another request under a used key, or another digest,
    is refused; nothing is opened or replaced twice."""
    hub = api.hub
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    other = hub.add_agency("ashur", AgencyKind.bank)
    ids = national_ids(12, seed=9)
    toks = tokens(key, ids)
    body = {"kind": "flags", "key_version": key.version, "flags": [LOAN], "expected_rows": 12}
    idem = {"idempotency-key": "push-2026-12-07-rafidain-0001"}
    with api.client(bank) as client:
        first = client.post("/v1/uploads", json=body, headers=idem)
        again = client.post("/v1/uploads", json=body, headers=idem)
        assert first.status_code == again.status_code == 201
        assert again.json()["id"] == first.json()["id"]
        reused = client.post("/v1/uploads", json={**body, "expected_rows": 11}, headers=idem)
        assert reused.status_code == 409
        assert reused.json()["error"]["code"] == "idempotency_key_reused"
        bad = client.post("/v1/uploads", json=body, headers={"idempotency-key": "short"})
        assert bad.status_code == 422
        pusher = PushClient(client)
        result = pusher.send(
            first.json()["id"],
            lambda: compact_chunks(_rows(toks, ids, [LOAN]), [LOAN], 5, roster=False),
            COMPACT,
            12,
        )
        assert result.upload["state"] == "committed"
        before = _state(hub)
        repeat = pusher.commit(result.upload["id"], 12, result.chunks_sha256)
        assert repeat == result.upload
        assert _state(hub) == before
        with pytest.raises(PushError) as other_digest:
            pusher.commit(result.upload["id"], 12, "0" * 64)
        assert other_digest.value.code == "upload_not_open"
    with api.client(other) as client:  # the key is the agency's own
        theirs = client.post("/v1/uploads", json=body, headers=idem)
        assert theirs.status_code == 201
        assert theirs.json()["id"] != first.json()["id"]
    with hub.session() as session:
        assert session.scalar(select(func.count()).select_from(Upload)) == 2
    assert visible_flags(hub) == {stored(hub, toks[i]): {("rafidain", LOAN)} for i in ids}
