"""Several broker processes on one database, as production runs them: any request of an
upload to any process, one lookup rate per agency across processes, and match jobs run once
by whichever ``matchhub worker`` takes them, surviving that worker's kill -9."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import select

from matchhub.agency.connector.client import make_client
from matchhub.agency.connector.push import PushClient, compact_chunks, push
from matchhub.audit.models import AuditEntry
from matchhub.cli.processes import BrokerProcess, WorkerProcess
from matchhub.jobs.models import MatchJob
from matchhub.protocol.kinds import AgencyKind
from matchhub.protocol.wire import COMPACT, chunks_digest
from tests.conftest import Hub
from tests.e2e.helpers import national_ids, stored, tokens, verify_audit_log, visible_flags

LOAN = "bank.large_loan"
PURPOSE = "eligibility_review"


def _env(hub: Hub, **settings: str) -> dict[str, str]:
    env = {"MATCHHUB_DATABASE_URL": hub.settings.database_url or ""}
    env.update({f"MATCHHUB_{name.upper()}": value for name, value in settings.items()})
    return env


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as processes:
        yield processes


def _serve(hub: Hub, stack: ExitStack, name: str, **settings: str) -> BrokerProcess:
    probe = next(iter(hub.credentials.values()))
    broker = BrokerProcess(
        hub.settings.home, probe, env=_env(hub, **settings), log=hub.settings.home / f"{name}.log"
    )
    stack.callback(broker.stop)
    return broker.start()


def test_the_chunks_of_one_upload_alternate_between_two_processes(
    hub: Hub, stack: ExitStack, tmp_path: Path
) -> None:
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    ids = national_ids(70, seed=21)
    toks = tokens(key, ids)
    rows = [(toks[i], [LOAN]) for i in ids]
    chunks = list(compact_chunks(rows, [LOAN], 10, roster=False))
    first, second = _serve(hub, stack, "a"), _serve(hub, stack, "b")
    a = PushClient(stack.enter_context(make_client(first.url, bank, attempts=1)))
    b = PushClient(stack.enter_context(make_client(second.url, bank, attempts=1)))
    upload = a.open("flags", key.version, [LOAN], len(rows))
    for chunk in chunks:
        receipt = (a if chunk.seq % 2 == 0 else b).put(upload["id"], chunk, COMPACT)
        assert (receipt["duplicate"], receipt["next_seq"]) == (False, chunk.seq + 1)
    # A retry that reaches the other process is recognised there too, not stored twice.
    again = a.put(upload["id"], chunks[3], COMPACT)
    assert (again["duplicate"], again["next_seq"]) == (True, len(chunks))
    assert b.status(upload["id"])["next_seq"] == len(chunks)
    each = [hashlib.sha256(c.body).digest() for c in chunks]
    wrong = chunks_digest([each[1], each[0], *each[2:]])  # two chunks swapped
    refused = b.client.post(
        f"/v1/uploads/{upload['id']}/commit", json={"rows": len(rows), "chunks_sha256": wrong}
    )
    assert refused.json()["error"]["code"] == "digest_mismatch"
    committed = b.commit(upload["id"], len(rows), chunks_digest(each))
    assert (committed["state"], committed["rows_received"]) == ("committed", len(rows))
    assert visible_flags(hub) == {stored(hub, toks[i]): {("rafidain", LOAN)} for i in ids}
    report = verify_audit_log(hub, tmp_path / "export")
    with hub.session() as session:
        chunk_entries = [
            json.loads(body)
            for body in session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq))
            if '"/v1/uploads/{upload_id}/chunks/{seq}"' in body
        ]
    assert report.entries > len(chunks)
    assert len(chunk_entries) == len(chunks) + 1  # every chunk and the retry, from both


def test_an_agencys_lookup_rate_holds_across_two_processes(hub: Hub, stack: ExitStack) -> None:
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    key = hub.matching_key()
    token = next(iter(tokens(key, national_ids(1, seed=22)).values()))
    limits = {"lookup_rate_per_second": "0.5", "lookup_burst": "10", "heartbeat_seconds": "0.2"}
    brokers = [_serve(hub, stack, name, **limits) for name in ("a", "b")]
    clients = [stack.enter_context(make_client(b.url, molsa)) for b in brokers]
    deadline = time.monotonic() + 20
    while any(c.get("/readyz").json()["processes"].get("serve") != 2 for c in clients):
        assert time.monotonic() < deadline, "the processes never saw each other"
        time.sleep(0.1)
    listed = subprocess.run(
        [sys.executable, "-m", "matchhub", "--home", str(hub.settings.home), "processes"],
        env={**os.environ, **_env(hub)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert all(re.search(rf"\b{b.pid}\b", listed) for b in brokers), listed
    assert listed.count("serve") >= 2
    body = {"purpose": PURPOSE, "tokens": [token]}
    started = time.monotonic()
    statuses = [clients[n % 2].post("/v1/lookups", json=body).status_code for n in range(40)]
    elapsed = time.monotonic() - started
    admitted = sum(status != 429 for status in statuses)
    # One burst of 10 between the two processes (each holds 5), plus what 0.5/s refills
    # while the requests ran; one process's limit alone would have let 20 through.
    assert 10 <= admitted <= 10 + int(0.5 * elapsed) + 1, (admitted, elapsed)
    assert all(status in (200, 429) for status in statuses)


def test_a_job_runs_once_on_one_of_two_workers_and_survives_its_kill(
    hub: Hub, stack: ExitStack
) -> None:
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    ids = national_ids(50, seed=23)
    toks = tokens(key, ids)
    # The HTTP process runs no background work; two workers hold each job 4 s before running
    # it, so the test can kill the one that took it.
    broker = _serve(hub, stack, "serve", serve_background="false")
    timing = {
        "job_lease_seconds": "1",
        "job_poll_seconds": "0.1",
        "job_fault_delay_seconds": "4",
        "environment": "development",
    }
    workers = {}
    for name in ("w1", "w2"):
        worker = WorkerProcess(
            hub.settings.home, molsa, env=_env(hub, **timing), log=hub.settings.home / f"{name}.log"
        )
        stack.callback(worker.stop)
        worker.start()
        workers[worker.pid] = worker
    with make_client(broker.url, bank) as client:
        push(client, kind="flags", key_version=key.version, flags=[LOAN],
             rows=[(toks[i], [LOAN]) for i in ids[:20]])  # fmt: skip
    with make_client(broker.url, molsa) as client:
        push(client, kind="roster", key_version=key.version, flags=[],
             rows=[(toks[i], []) for i in ids[10:]])  # fmt: skip
        job_id = client.post("/v1/match-jobs", json={"purpose": PURPOSE}).json()["id"]
        deadline = time.monotonic() + 20
        while (holder := _holder(hub, job_id)) is None:
            assert time.monotonic() < deadline, "no worker took the job"
            time.sleep(0.02)
        taker = workers[int(holder.split(":")[1])]
        taker.kill()
        deadline = time.monotonic() + 30
        while (job := client.get(f"/v1/match-jobs/{job_id}").json())["state"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, f"the job was left {job['state']}"
            time.sleep(0.1)
        assert job["state"] == "succeeded", job
        lines = client.get(f"/v1/match-jobs/{job_id}/results").text.splitlines()
    assert {json.loads(line)["token"] for line in lines} == {toks[i] for i in ids[10:20]}
    with hub.session() as session:
        states = [
            (body["state"], body["attempt"])
            for body in (
                json.loads(b) for b in session.scalars(select(AuditEntry.body)) if '"job"' in b
            )
            if body.get("kind") == "job" and body.get("job") == job_id
        ]
    # Taken, killed, taken again by the other worker, published once.
    assert sorted(states) == [("running", 1), ("running", 2), ("succeeded", 2)]


def _holder(hub: Hub, job_id: str) -> str | None:
    with hub.session() as session:
        job = session.get(MatchJob, job_id)
        return job.worker if job is not None and job.state == "running" else None
