"""The broker as operators run it (``matchhub serve`` in its own process): restarts, and what
it leaves on disk."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from matchhub.agency.connector.client import make_client
from matchhub.agency.connector.push import Chunk, PushClient, PushError, compact_chunks, push
from matchhub.cli.processes import BrokerProcess
from matchhub.protocol.kinds import AgencyKind
from matchhub.protocol.wire import COMPACT, chunks_digest
from tests.conftest import Hub
from tests.e2e.helpers import national_ids, stored, tokens, visible_flags

LOAN = "bank.large_loan"


def _env(hub: Hub) -> dict[str, str]:
    return {"MATCHHUB_DATABASE_URL": hub.settings.database_url or ""}


def test_upload_resumes_after_the_broker_is_killed(hub: Hub) -> None:
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    ids = national_ids(60, seed=11)
    toks = tokens(key, ids)
    rows = [(toks[i], [LOAN]) for i in ids]

    def chunks() -> list[Chunk]:
        return list(compact_chunks(rows, [LOAN], 10, roster=False))

    broker = BrokerProcess(hub.settings.home, bank, env=_env(hub)).start()
    try:
        with make_client(broker.url, bank) as client:
            pusher = PushClient(client)
            upload = pusher.open("flags", key.version, [LOAN], len(rows))
            for chunk in chunks()[:4]:
                pusher.put(upload["id"], chunk, COMPACT)
        broker.kill()
        broker.start()
        with make_client(broker.url, bank) as client:
            pusher = PushClient(client)
            status = pusher.status(upload["id"])
            # What the commit checks is in the database: the broker goes on from chunk 4.
            assert (status["chunks_received"], status["next_seq"]) == (4, 4)
            for chunk in chunks()[4:]:
                pusher.put(upload["id"], chunk, COMPACT)
            bodies = hashlib.sha256(b"".join(c.body for c in chunks())).hexdigest()
            # The first form needs the running digest the killed process held: refused, with
            # the chunk a re-send to this process would start from.
            with pytest.raises(PushError) as refused:
                pusher.commit(upload["id"], len(rows), sha256=bodies)
            assert (refused.value.code, refused.value.details) == (
                "digest_state_lost",
                {"next_seq": 0},
            )
            each = [hashlib.sha256(c.body).digest() for c in chunks()]
            committed = pusher.commit(upload["id"], len(rows), chunks_digest(each))
        assert committed["state"] == "committed"
        assert committed["rows_received"] == len(rows)
    finally:
        broker.stop()
    assert visible_flags(hub) == {stored(hub, toks[i]): {("rafidain", LOAN)} for i in ids}


def _dump(hub: Hub, tmp_path: Path) -> bytes:
    """Every byte the broker wrote: its state folder, and the PostgreSQL database if used."""
    blobs = [p.read_bytes() for p in hub.settings.home.rglob("*") if p.is_file()]
    url = hub.settings.database_url
    if url:
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            pytest.fail("pg_dump is needed to scan the PostgreSQL database")
        parsed = make_url(url)
        dump = subprocess.run(
            [
                pg_dump,
                "-h",
                parsed.host or "127.0.0.1",
                "-p",
                str(parsed.port or 5432),
                "-U",
                parsed.username or "postgres",
                "--data-only",
                parsed.database or "",
            ],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
        assert b"COPY public.snapshot_rows" in dump  # the scan really covers the rows
        blobs.append(dump)
    return b"\n".join(blobs)


def test_the_broker_writes_no_wire_token_and_no_identifier(hub: Hub, tmp_path: Path) -> None:
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    ids = national_ids(40, seed=12)
    toks = tokens(key, ids)
    with BrokerProcess(hub.settings.home, bank, env=_env(hub)) as broker:
        with make_client(broker.url, bank) as client:
            push(
                client,
                kind="flags",
                key_version=key.version,
                flags=[LOAN],
                rows=[(toks[i], [LOAN]) for i in ids[:25]],
                chunk_rows=7,
                fmt="ndjson",
            )
            # A refused chunk too: the raw ID must not be echoed into a log either.
            pusher = PushClient(client)
            upload = pusher.open("flags", key.version, [LOAN], 1)
            bad = f'{{"token": "{ids[30]}", "flags": ["{LOAN}"]}}\n'.encode()
            response = client.put(
                f"/v1/uploads/{upload['id']}/chunks/0",
                content=bad,
                headers={"content-type": "application/x-ndjson"},
            )
            assert response.status_code == 422
            assert ids[30] not in response.text
        with make_client(broker.url, molsa) as client:
            push(
                client,
                kind="roster",
                key_version=key.version,
                flags=[],
                rows=[(toks[i], []) for i in ids[10:]],
                chunk_rows=6,
            )
    written = _dump(hub, tmp_path)
    assert (
        stored(hub, toks[ids[0]]) in written or stored(hub, toks[ids[0]]).hex().encode() in written
    )  # the scan sees the stored (re-keyed) form, so it would see a wire token too
    secret = key.get_secret_value()
    for needle in [secret, secret.hex().encode()]:
        assert needle not in written, "the matching key reached the broker's disk"
    for raw in ids:
        wire = bytes.fromhex(toks[raw])
        for needle in (raw.encode(), toks[raw].encode(), wire, wire.hex().upper().encode()):
            assert needle not in written, f"a wire token or raw ID of {raw[:2]}… reached disk"


@pytest.mark.parametrize("max_attempts", [3, 1])
def test_a_job_survives_sigkill_of_the_broker(hub: Hub, max_attempts: int) -> None:
    """Killed mid-job, the broker on restart re-runs the job to the right result, or, when it
    has used its attempts, fails it with a reason; it is never left running."""
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    ids = national_ids(50, seed=13)
    toks = tokens(key, ids)
    env = {
        **_env(hub),
        "MATCHHUB_JOB_LEASE_SECONDS": "1",
        "MATCHHUB_JOB_MAX_ATTEMPTS": str(max_attempts),
    }
    broker = BrokerProcess(
        hub.settings.home, molsa, env={**env, "MATCHHUB_JOB_FAULT_DELAY_SECONDS": "30"}
    ).start()
    try:
        with make_client(broker.url, bank) as client:
            push(
                client,
                kind="flags",
                key_version=key.version,
                flags=[LOAN],
                rows=[(toks[i], [LOAN]) for i in ids[:20]],
            )
        with make_client(broker.url, molsa) as client:
            push(
                client,
                kind="roster",
                key_version=key.version,
                flags=[],
                rows=[(toks[i], []) for i in ids[10:]],
            )
            job_id = client.post("/v1/match-jobs", json={"purpose": "eligibility_review"}).json()[
                "id"
            ]
            deadline = time.monotonic() + 20
            while client.get(f"/v1/match-jobs/{job_id}").json()["state"] != "running":
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.05)
        broker.kill()
        broker.env = {**broker.env, **env, "MATCHHUB_JOB_FAULT_DELAY_SECONDS": "0"}
        broker.start()
        with make_client(broker.url, molsa) as client:
            deadline = time.monotonic() + 30
            while (job := client.get(f"/v1/match-jobs/{job_id}").json())["state"] in (
                "queued",
                "running",
            ):
                assert time.monotonic() < deadline, f"the job was left {job['state']}"
                time.sleep(0.1)
            if max_attempts == 1:
                assert job["state"] == "failed"
                assert "abandoned after 1 attempts" in job["reason"]
                return
            assert job["state"] == "succeeded", job
            lines = client.get(f"/v1/match-jobs/{job_id}/results").text.splitlines()
    finally:
        broker.stop()
    assert {json.loads(line)["token"] for line in lines} == {toks[i] for i in ids[10:20]}
    assert job["summary"]["flagged_beneficiaries"] == 10
