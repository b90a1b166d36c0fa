"""The audit log through the API: every request recorded, subject trail, checkpoints, proofs,
witnesses, an append-only live log, and failing closed (export, offline verification and
tampering: tests/e2e/test_audit_export.py)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import text

from matchhub.agency.connector.push import push
from matchhub.audit import service as audit
from matchhub.keystore.material import load_key_material
from matchhub.kit.db import make_engine, make_sessionmaker
from matchhub.protocol import merkle
from matchhub.protocol.checkpoint import (
    CheckpointError,
    Witness,
    verify_checkpoint,
)
from matchhub.protocol.kinds import AgencyKind
from matchhub.uploads.models import Upload
from matchhub.web.app import create_app
from matchhub.web.recorder import UNAUDITED_PATHS
from matchhub.web.writer import AuditWriter, AuditWriterStopped
from tests.conftest import Hub, InProcessApi
from tests.e2e.helpers import national_ids, tokens

PURPOSE = "eligibility_review"


def _entries(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/v1/audit/entries", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    return [e["entry"] for e in response.json()["entries"]]


def _size(hub: Hub) -> int:
    with hub.session() as session:
        return int(session.execute(text("SELECT size FROM audit_state")).scalar_one())


def test_every_route_leaves_exactly_one_audit_entry(api: InProcessApi) -> None:
    """The route walk: each route, called (and mostly refused), adds one entry naming it."""
    hub = api.hub
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    routes = [
        r
        for r in iter_route_contexts(create_app(hub.settings).routes)
        if r.path not in UNAUDITED_PATHS
    ]
    assert len(routes) >= 12
    with api.client(molsa) as client:
        for route in routes:
            path = re.sub(r"\{[^}]+\}", "0" * 32, route.path).replace(
                "/chunks/" + "0" * 32, "/chunks/0"
            )
            for method in sorted(route.methods or []):
                before = _size(hub)
                response = client.request(method, path)
                after = _size(hub)
                assert after == before + 1, f"{method} {route.path} left {after - before} entries"
                with hub.session() as session:
                    body = json.loads(
                        session.execute(
                            text("SELECT body FROM audit_entries WHERE seq = :s"), {"s": before}
                        ).scalar_one()
                    )
                assert (body["method"], body["route"], body["status"]) == (
                    method,
                    route.path,
                    response.status_code,
                )
                assert body["agency"] == "molsa"
                assert body["outcome"] == ("accepted" if response.status_code < 400 else "refused")
        before = _size(hub)
        assert client.get("/v1/nowhere").status_code == 404
        assert _size(hub) == before + 1


def test_lookups_leave_a_subject_trail_and_no_token(api: InProcessApi) -> None:
    hub = api.hub
    key = hub.matching_key()
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    auditor = hub.add_agency("audit-board", AgencyKind.auditor)
    ids = national_ids(6, seed=31)
    toks = tokens(key, ids)
    with api.client(molsa) as client:
        push(
            client,
            kind="roster",
            key_version=key.version,
            flags=[],
            rows=[(t, []) for t in toks.values()],
        )
        for pair in (ids[:2], ids[1:3]):
            response = client.post(
                "/v1/lookups", json={"purpose": PURPOSE, "tokens": [toks[i] for i in pair]}
            )
            assert response.status_code == 200
    with api.client(auditor) as client:
        trail = _entries(client, subject=toks[ids[1]])
        assert [e["route"] for e in trail] == ["/v1/lookups", "/v1/lookups"]
        assert all(e["purpose"] == PURPOSE and e["agency"] == "molsa" for e in trail)
        assert [e["route"] for e in _entries(client, subject=toks[ids[2]])] == ["/v1/lookups"]
        assert _entries(client, subject=toks[ids[5]]) == []
        by_agency = _entries(client, agency="molsa", route="/v1/lookups")
        assert len(by_agency) == 2
        assert by_agency[0]["tokens_in"] == 2
        everything = client.get("/v1/audit/entries", params={"limit": 1000}).text
    for raw, token in toks.items():
        assert raw not in everything
        assert token not in everything


@pytest.mark.settings(audit_checkpoint_every=1)  # a checkpoint at every entry, for the test
def test_checkpoints_proofs_and_a_witness(api: InProcessApi, tmp_path: Path) -> None:
    hub = api.hub
    auditor = hub.add_agency("audit-board", AgencyKind.auditor)
    with api.client(auditor) as client:
        first = client.get("/v1/audit/checkpoint").json()
        verifier = first["verifier_key"]
        witness = Witness(tmp_path / "witness.json", verifier, first["origin"])
        witness.update(first["note"])
        for _ in range(5):
            client.get("/v1/whoami")
        second = client.get("/v1/audit/checkpoint").json()
        assert second["size"] > first["size"]
        proof = client.get(
            "/v1/audit/proofs/consistency",
            params={"old_size": first["size"], "new_size": second["size"]},
        ).json()
        witness.update(second["note"], [bytes.fromhex(h) for h in proof["proof"]])
        checkpoint = verify_checkpoint(second["note"], verifier)
        for seq in (0, second["size"] // 2, second["size"] - 1):
            inc = client.get(
                "/v1/audit/proofs/inclusion", params={"seq": seq, "tree_size": second["size"]}
            ).json()
            merkle.verify_inclusion(
                seq,
                second["size"],
                bytes.fromhex(inc["leaf_hash"]),
                [bytes.fromhex(h) for h in inc["proof"]],
                checkpoint.root,
            )
        bad = client.get("/v1/audit/proofs/inclusion", params={"seq": 0, "tree_size": 10**9})
        assert bad.json()["error"]["code"] == "invalid_tree_size"
        molsa = hub.add_agency("molsa", AgencyKind.welfare)
    with api.client(molsa) as client:
        # Any agency may witness the log; only auditors read its entries and inclusion proofs.
        assert client.get("/v1/audit/checkpoint").status_code == 200
        assert client.get("/v1/audit/entries").json()["error"]["code"] == "scope_denied"
        inclusion = client.get("/v1/audit/proofs/inclusion", params={"seq": 0, "tree_size": 1})
        assert inclusion.json()["error"]["code"] == "scope_denied"


def test_checkpoints_are_signed_on_their_schedule_not_for_a_request(api: InProcessApi) -> None:
    hub = api.hub
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    with hub.session() as session:
        signed = session.scalar(text("SELECT count(*) FROM audit_checkpoints"))
    with api.client(molsa) as client:
        first = client.get("/v1/audit/checkpoint").json()
        for _ in range(3):
            client.get("/v1/whoami")
        assert client.get("/v1/audit/checkpoint").json() == first  # the log grew; no signing
    with hub.session() as session:
        assert session.scalar(text("SELECT count(*) FROM audit_checkpoints")) == signed


@pytest.mark.settings(witness_burst=3, witness_rate_per_second=0.001)
def test_the_witness_routes_are_rate_limited_per_agency(api: InProcessApi) -> None:
    for code in ("rafidain", "ashur"):
        api.hub.add_agency(code, AgencyKind.bank)
    with api.client("rafidain") as client:
        answers = [client.get("/v1/audit/checkpoint") for _ in range(2)]
        answers.append(
            client.get("/v1/audit/proofs/consistency", params={"old_size": 0, "new_size": 1})
        )
        assert [a.status_code for a in answers] == [200, 200, 200]
        refused = client.get("/v1/audit/checkpoint")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "witness_rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
    with api.client("ashur") as client:  # another agency has its own allowance
        assert client.get("/v1/audit/checkpoint").status_code == 200


@pytest.mark.settings(audit_checkpoint_every=1)  # a checkpoint at every entry, for the test
def test_the_live_log_is_append_only_and_a_witness_catches_a_superuser(
    api: InProcessApi, tmp_path: Path
) -> None:
    hub = api.hub
    auditor = hub.add_agency("audit-board", AgencyKind.auditor)
    with api.client(auditor) as client:
        for _ in range(4):
            client.get("/v1/whoami")
        first = client.get("/v1/audit/checkpoint").json()
    witness = Witness(tmp_path / "w.json", first["verifier_key"], first["origin"])
    witness.update(first["note"])
    for statement in (
        "UPDATE audit_entries SET body = 'x' WHERE seq = 1",
        "DELETE FROM audit_entries WHERE seq = 1",
    ):
        with pytest.raises(Exception, match="append-only"), hub.session() as session:
            session.execute(text(statement))
    # A database superuser switches the protection off and rewrites entry 1, and the stored
    # subtree roots above it to match (what proofs are made of).
    dialect = "postgresql" if hub.settings.database_url else "sqlite"
    with hub.session() as session:
        for table in ("audit_entries", "audit_nodes"):
            if dialect == "postgresql":
                session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER ALL"))
            else:
                session.execute(text(f"DROP TRIGGER {table}_no_update"))
        leaves = [
            bytes(h)
            for h in session.scalars(text("SELECT leaf_hash FROM audit_entries ORDER BY seq"))
        ]
        leaves[1] = merkle.leaf_hash(b"forged")
        session.execute(
            text("UPDATE audit_entries SET leaf_hash = :h WHERE seq = 1"), {"h": leaves[1]}
        )
        forged: list[tuple[int, int, bytes]] = []
        frontier = merkle.CompactRange()
        for leaf in leaves:
            frontier.append(leaf, forged)
        for level, idx, h in forged:
            if idx == 1 >> level:
                session.execute(
                    text("UPDATE audit_nodes SET hash = :h WHERE level = :l AND idx = :i"),
                    {"h": h, "l": level, "i": idx},
                )
    with api.client(auditor) as client:
        client.get("/v1/whoami")
        # The broker's frontier still holds the true history, so a rewrite shows at the
        # next checkpoint: the proofs, computed from the stored leaves, no longer agree.
        second = client.get("/v1/audit/checkpoint").json()
        proof = client.get(
            "/v1/audit/proofs/consistency",
            params={"old_size": first["size"], "new_size": second["size"]},
        ).json()
    with pytest.raises(CheckpointError) as caught:
        witness.update(second["note"], [bytes.fromhex(h) for h in proof["proof"]])
    assert caught.value.reason.value == "inconsistent"


def test_audit_failure_fails_closed(api: InProcessApi) -> None:
    hub = api.hub
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    with hub.session() as session:
        if hub.settings.database_url:
            session.execute(
                text(
                    "CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    "BEGIN RAISE EXCEPTION 'disk full'; END $$"
                )
            )
            session.execute(
                text(
                    "CREATE TRIGGER disk_full BEFORE INSERT ON audit_entries "
                    "FOR EACH ROW EXECUTE FUNCTION disk_full()"
                )
            )
        else:
            session.execute(
                text(
                    "CREATE TRIGGER disk_full BEFORE INSERT ON audit_entries "
                    "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            )
    with api.client(bank, attempts=1) as client:  # each answer as the broker gave it
        response = client.post(
            "/v1/uploads",
            json={
                "kind": "flags",
                "key_version": key.version,
                "flags": ["bank.large_loan"],
                "expected_rows": 1,
            },
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "audit_unavailable"
        refused = client.get("/v1/nowhere")
        assert refused.status_code == 503
        # A read-only route's entry goes through the group-commit writer: no entry, no answer.
        read = client.get("/v1/whoami")
        assert read.status_code == 503
        assert read.json()["error"]["code"] == "audit_unavailable"
        assert "rafidain" not in read.text
    with hub.session() as session:
        assert session.query(Upload).count() == 0
        session.execute(
            text(
                "DROP TRIGGER disk_full"
                + (" ON audit_entries" if hub.settings.database_url else "")
            )
        )
    # The writer outlives a failed batch.
    with api.client(bank) as client:
        assert client.get("/v1/whoami").status_code == 200


def test_the_writer_answers_each_waiter_and_leaves_out_one_that_gave_up(hub: Hub) -> None:
    # Its waiters are told from the writer's thread, a batch at a time; a request that stopped
    # waiting before a batch took its entry is not in the log.
    engine = make_engine(hub.settings.sqlalchemy_url)
    keys = audit.keys_from(load_key_material(hub.paths), hub.settings.hub_name)
    writer = AuditWriter(make_sessionmaker(engine), keys)
    before = _size(hub)

    def entry(n: int) -> audit.PendingEntry:
        return audit.PendingEntry(kind="request", body={"n": n})

    async def waiters() -> list[int]:
        with pytest.raises(TimeoutError):  # not started: no batch takes it in time
            await writer.record(entry(0), timeout=0.05)
        writer.start()
        return await asyncio.gather(*(writer.record(entry(n)) for n in range(1, 6)))

    try:
        seqs = asyncio.run(waiters())
    finally:
        writer.stop()
        engine.dispose()
    assert seqs == list(range(before, before + 5))
    assert _size(hub) == before + 5
    with hub.session() as session:
        bodies = session.execute(
            text("SELECT body FROM audit_entries WHERE seq >= :s"), {"s": before}
        )
        assert sorted(json.loads(b)["n"] for (b,) in bodies) == [1, 2, 3, 4, 5]
    with pytest.raises(AuditWriterStopped):
        asyncio.run(writer.record(entry(6)))


def test_the_writer_reconnects_when_its_connection_died(api: InProcessApi) -> None:
    # The writer keeps one connection between batches and pings it no more: a batch that finds
    # it dead before committing is tried again on a new one, so no caller sees the loss.
    hub = api.hub
    if not hub.settings.database_url:
        pytest.skip("SQLite has no connection to lose")
    hub.add_agency("rafidain", AgencyKind.bank)
    before = _size(hub)
    with api.client("rafidain", attempts=1) as client:
        assert client.get("/v1/whoami").status_code == 200
        with hub.session() as session:
            killed = session.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        assert killed >= 1
        for _ in range(3):
            assert client.get("/v1/whoami").status_code == 200
    assert _size(hub) == before + 4
