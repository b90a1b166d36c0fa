"""Cases over real mutual TLS (issue 15): from a match job to an upheld and to a withdrawn
decision, and from a lookup's reference, with the server's clock moved; then nothing the broker
wrote (its database, its state folder, its logs, its audit log) holds a wire token or an ID."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from matchhub.audit.models import AuditEntry
from tests.api.test_queries import GEN, LOAN, PURPOSE, _ndjson, _wait, _world
from tests.conftest import RunningServer
from tests.e2e.helpers import stored
from tests.e2e.test_broker_process import _dump

STAFF = {"matchhub-end-user": "du-caseworker-0002"}


def test_cases_over_tls_leave_no_wire_token_behind(
    server: RunningServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    world = _world(server)
    hub = server.hub
    upheld_token = world.toks[world.ids[3]]
    withdrawn_token = world.toks[world.ids[23]]
    lookup_token = world.toks[world.ids[8]]
    with world.client("molsa") as client:
        job = _wait(client, client.post("/v1/match-jobs", json={"purpose": PURPOSE}).json()["id"])
        results = {
            line["token"]: line
            for line in _ndjson(client.get(f"/v1/match-jobs/{job['id']}/results"))
        }
        assert upheld_token in results
        assert withdrawn_token in results

        def move(case_id: str, to: str, reason: str | None = None) -> str:
            body = {"to": to, **({"reason": reason} if reason else {})}
            answer = client.post(f"/v1/cases/{case_id}/transitions", json=body, headers=STAFF)
            assert answer.status_code == 200, answer.text
            return str(answer.json()["state"])

        opened = [
            client.post(
                "/v1/cases",
                json={"job": job["id"], "token": token, "flags": [flag]},
                headers=STAFF,
            ).json()["id"]
            for token, flag in ((upheld_token, LOAN), (withdrawn_token, GEN))
        ]
        reference = client.post(
            "/v1/lookups", json={"purpose": PURPOSE, "tokens": [lookup_token]}, headers=STAFF
        ).json()["reference"]
        from_lookup = client.post(
            "/v1/cases",
            json={"lookup": reference, "token": lookup_token, "flags": [LOAN]},
            headers=STAFF,
        )
        assert from_lookup.status_code == 201, from_lookup.text
        for case_id in [*opened, from_lookup.json()["id"]]:
            for step in ("verifying", "confirmed", "notified"):
                move(case_id, step)
        refused = client.post(
            f"/v1/cases/{opened[0]}/transitions",
            json={"to": "decided", "reason": "upheld"},
            headers=STAFF,
        )
        assert (refused.status_code, refused.json()["error"]["code"]) == (409, "response_not_due")
        server.clock.advance(timedelta(days=30, hours=1))
        assert move(opened[0], "decided", "upheld") == "decided"  # no response came
        move(opened[1], "responded")
        assert move(opened[1], "decided", "withdrawn") == "decided"
        assert [move(c, "closed") for c in opened] == ["closed", "closed"]
        listed = client.get("/v1/cases", params={"state": "closed"}).json()["cases"]
        assert {c["decision"] for c in listed} == {"upheld", "withdrawn"}
    with hub.session() as session:
        entries = [json.loads(b) for b in session.scalars(select(AuditEntry.body))]
    moves = [e for e in entries if e.get("route") == "/v1/cases/{case_id}/transitions"]
    assert {e["end_user"] for e in moves} == {STAFF["matchhub-end-user"]}

    written = _dump(hub, tmp_path)
    logs = capfd.readouterr()
    said = (logs.out + logs.err).encode()
    # The scan sees the case's stored (re-keyed) token, so it would see a wire token too.
    kept = stored(hub, upheld_token)
    assert kept in written or kept.hex().encode() in written
    for raw in world.ids:
        wire = bytes.fromhex(world.toks[raw])
        for needle in (raw.encode(), wire.hex().encode(), wire, wire.hex().upper().encode()):
            assert needle not in written, f"a wire token or ID of {raw[:2]}… reached disk"
            assert needle not in said, f"a wire token or ID of {raw[:2]}… reached a log"
