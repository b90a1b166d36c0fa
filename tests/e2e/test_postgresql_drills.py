"""The PostgreSQL drills: failover to a synchronous streaming replica, and a point-in-time
restore from a base backup and WAL archive, each with broker processes running through it.

Each drill makes its own throwaway clusters (tests/clusters.py) on ports of their own and
removes them at the end, whatever happens; the machine's main cluster is not touched. The
brokers connect with one multi-host URL (``host=a&host=b&target_session_attrs=read-write``),
as docs/deployment.md sets them up, and are never restarted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from matchhub.agency.connector.client import AgencyCredentials, make_client
from matchhub.agency.connector.push import PushClient, PushError, compact_chunks, push
from matchhub.audit.models import AuditEntry
from matchhub.cli import bootstrap
from matchhub.cli.processes import BrokerProcess, WorkerProcess
from matchhub.kit.settings import Settings
from matchhub.protocol.checkpoint import CheckpointError, Reason, Witness
from matchhub.protocol.kinds import AgencyKind
from matchhub.protocol.wire import COMPACT
from matchhub.uploads.models import Snapshot
from tests.clusters import Cluster, Clusters
from tests.conftest import BACKENDS, Hub
from tests.e2e.helpers import national_ids, tokens, verify_audit_log

pytestmark = pytest.mark.skipif(
    "postgresql" not in BACKENDS,
    reason="the drills run PostgreSQL clusters of their own; MATCHHUB_TEST_BACKENDS leaves "
    "PostgreSQL out",
)

LOAN = "bank.large_loan"
PURPOSE = "eligibility_review"


def multi_host_url(*clusters: Cluster) -> str:
    hosts = "&".join(f"host=127.0.0.1:{c.port}" for c in clusters)
    return (
        f"postgresql+psycopg://postgres@/matchhub?{hosts}"
        "&target_session_attrs=read-write&connect_timeout=3"
    )


@dataclass
class Deployment:
    """A hub on the drill's clusters, its agencies, and two ``matchhub serve`` processes."""

    hub: Hub
    key_version: str
    ids: list[str]
    toks: dict[str, str]
    bank: AgencyCredentials
    molsa: AgencyCredentials
    auditor: AgencyCredentials
    monitor: AgencyCredentials
    brokers: list[BrokerProcess] = field(default_factory=list)

    def flagged(self, ids: list[str]) -> set[str]:
        return {self.toks[i] for i in ids}


def deploy(tmp_path: Path, stack: ExitStack, url: str, **settings: str) -> Deployment:
    config = Settings(home=tmp_path / "state", database_url=url)
    bootstrap.initialise(config)
    hub = Hub(settings=config, agencies_dir=tmp_path / "agencies")
    key = hub.matching_key()
    ids = national_ids(80, seed=31)
    world = Deployment(
        hub,
        key.version,
        ids,
        tokens(key, ids),
        hub.add_agency("rafidain", AgencyKind.bank),
        hub.add_agency("molsa", AgencyKind.welfare),
        hub.add_agency("audit-board", AgencyKind.auditor),
        hub.add_agency("prometheus", AgencyKind.monitor),
    )
    env = {
        "MATCHHUB_DATABASE_URL": url,
        "MATCHHUB_HEARTBEAT_SECONDS": "0.5",
        "MATCHHUB_LOOKUP_RATE_PER_SECOND": "100000",
        "MATCHHUB_LOOKUP_BURST": "100000",
        **{f"MATCHHUB_{k.upper()}": v for k, v in settings.items()},
    }
    for n in range(2):
        broker = BrokerProcess(config.home, world.molsa, env=env, log=config.home / f"b{n}.log")
        stack.callback(broker.stop)
        world.brokers.append(broker.start(timeout=60))
    return world


def push_loans(world: Deployment, url: str, ids: list[str], attempts: int = 5) -> dict[str, Any]:
    """The bank's snapshot of large loans, through the push client with its retries."""
    rows = [(world.toks[i], [LOAN]) for i in ids]
    with make_client(url, world.bank, attempts=attempts, backoff=0.25) as client:
        pusher = PushClient(client)
        upload = pusher.open("flags", world.key_version, [LOAN], len(rows))
        result = pusher.send(
            upload["id"], lambda: compact_chunks(rows, [LOAN], 7, roster=False), COMPACT, len(rows)
        )
    return result.upload


def push_roster(world: Deployment, ids: list[str]) -> None:
    with make_client(world.brokers[0].url, world.molsa) as client:
        push(client, kind="roster", key_version=world.key_version, flags=[],
             rows=[(world.toks[i], []) for i in ids])  # fmt: skip


def lookup(client: httpx.Client, toks: list[str]) -> tuple[int, set[str]]:
    response = client.post("/v1/lookups", json={"purpose": PURPOSE, "tokens": toks})
    if response.status_code != 200:
        return response.status_code, set()
    flagged = {r["token"] for r in response.json()["results"] if r["flags"]}
    return 200, flagged


def witness_checkpoint(world: Deployment, url: str, witness: Witness) -> dict[str, Any]:
    """The auditor's witness takes the broker's current checkpoint, with a consistency proof
    from the one it holds."""
    with make_client(url, world.auditor) as client:
        now: dict[str, Any] = client.get("/v1/audit/checkpoint").json()
        held = witness.checkpoint
        proof: list[bytes] = []
        if held is not None and held.size not in (0, now["size"]) and now["size"] > held.size:
            answer = client.get(
                "/v1/audit/proofs/consistency",
                params={"old_size": held.size, "new_size": now["size"]},
            ).json()
            proof = [bytes.fromhex(h) for h in answer.get("proof", [])]
        witness.update(now["note"], proof)
    return now


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as processes:
        yield processes


def test_failover_to_a_synchronous_replica_loses_nothing_acknowledged(
    tmp_path: Path, stack: ExitStack
) -> None:
    clusters = stack.enter_context(Clusters())
    primary = clusters.new("primary", wal_level="replica", synchronous_commit="on").start()
    primary.query("CREATE DATABASE matchhub")
    # Once promoted it has no standby of its own: it must not wait for one.
    replica = clusters.adopt(primary.replica("replica", "replica", synchronous_standby_names=""))
    # From now on the primary acknowledges a commit only once the replica has it too.
    primary.query("ALTER SYSTEM SET synchronous_standby_names = 'replica'")
    primary.query("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 30
    while primary.query("SELECT sync_state FROM pg_stat_replication") != [("sync",)]:
        assert time.monotonic() < deadline, "the replica never became synchronous"
        time.sleep(0.1)
    url = multi_host_url(primary, replica)
    world = deploy(tmp_path, stack, url, serve_background="false")
    worker = WorkerProcess(
        world.hub.settings.home,
        world.molsa,
        env={**world.brokers[0].env, "MATCHHUB_JOB_FAULT_DELAY_SECONDS": "3"},
        log=world.hub.settings.home / "worker.log",
    )
    stack.callback(worker.stop)
    worker.start(timeout=60)
    pids = [b.pid for b in world.brokers] + [worker.pid]
    first, second = world.ids[:30], world.ids[20:50]  # the bank's two versions, alternating
    versions = {"first": first, "second": second}
    roster = world.ids[:60]
    asked = world.ids[10:40]
    push_roster(world, roster)
    push_loans(world, world.brokers[0].url, first)
    witness = Witness(
        tmp_path / "witness.json",
        _verifier(world),
        _origin(world),
    )
    before = witness_checkpoint(world, world.brokers[0].url, witness)
    answers: list[tuple[float, int, set[str]]] = []
    acknowledged: list[tuple[str, str]] = []  # (upload id, version) the broker said committed
    stop = threading.Event()

    def look() -> None:
        clients = [make_client(b.url, world.molsa) for b in world.brokers]
        asking = [world.toks[i] for i in asked]
        n = 0
        while not stop.is_set():
            try:
                status, flagged = lookup(clients[n % 2], asking)
            except httpx.TransportError:
                status, flagged = 0, set()
            answers.append((time.monotonic(), status, flagged))
            n += 1
            time.sleep(0.02)
        for client in clients:
            client.close()

    def upload() -> None:
        n = 0
        while not stop.is_set():
            name = "second" if n % 2 == 0 else "first"
            url = world.brokers[n % 2].url
            try:
                done = push_loans(world, url, versions[name], attempts=12)
            except (PushError, httpx.TransportError):
                continue  # not acknowledged: nothing is owed
            acknowledged.append((done["id"], name))
            n += 1

    threads = [threading.Thread(target=look), threading.Thread(target=upload)]
    for thread in threads:
        thread.start()
    with make_client(world.brokers[0].url, world.molsa) as client:
        job_id = client.post("/v1/match-jobs", json={"purpose": PURPOSE}).json()["id"]
    time.sleep(1.5)
    acked_before = len(acknowledged)
    primary.stop("immediate")  # the primary's host is lost
    replica.promote()
    failed_over = time.monotonic()
    deadline = time.monotonic() + 60
    while len(acknowledged) < acked_before + 3 or not any(
        t > failed_over and s == 200 for t, s, _ in answers
    ):
        assert time.monotonic() < deadline, "the brokers did not carry on after the failover"
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    # Nobody was restarted; every broker process carried on by itself.
    assert [b.process.poll() for b in world.brokers] + [worker.process.poll()] == [None] * 3
    assert [b.pid for b in world.brokers] + [worker.pid] == pids
    # Nothing acknowledged was lost: every commit the brokers confirmed is on the new primary,
    # and the last one is what is current.
    with world.hub.session() as session:
        states = {
            u: session.scalar(select(Snapshot.state).where(Snapshot.upload_id == u))
            for u, _ in acknowledged
        }
    assert all(state in ("current", "superseded", "purged") for state in states.values()), states
    assert states[acknowledged[-1][0]] == "current"
    # No snapshot was ever half visible: each answer is one version or the other.
    expected = {frozenset(world.flagged([i for i in asked if i in v])) for v in versions.values()}
    answered = [flagged for _, status, flagged in answers if status == 200]
    assert answered
    assert all(frozenset(f) in expected for f in answered)
    # Each answer that went out had its audit entry committed first.
    with world.hub.session() as session:
        recorded = sum(
            1
            for body in session.scalars(select(AuditEntry.body))
            if '"/v1/lookups"' in body and json.loads(body)["status"] == 200
        )
    assert recorded >= len(answered)
    # The job ran through it, once, to a right answer.
    with make_client(world.brokers[1].url, world.molsa) as client:
        deadline = time.monotonic() + 60
        while (job := client.get(f"/v1/match-jobs/{job_id}").json())["state"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, f"the job was left {job['state']}"
            time.sleep(0.2)
        assert job["state"] == "succeeded", job
        lines = client.get(f"/v1/match-jobs/{job_id}/results").text.splitlines()
    got = {json.loads(line)["token"] for line in lines}
    assert got in [world.flagged([i for i in roster if i in v]) for v in versions.values()]
    # The log still verifies, and is consistent with the checkpoint taken before.
    report = verify_audit_log(world.hub, tmp_path / "export", before["note"])
    assert report.saved_checked
    after = witness_checkpoint(world, world.brokers[1].url, witness)
    assert after["size"] > before["size"]


def _verifier(world: Deployment) -> str:
    with make_client(world.brokers[0].url, world.auditor) as client:
        return str(client.get("/v1/audit/checkpoint").json()["verifier_key"])


def _origin(world: Deployment) -> str:
    with make_client(world.brokers[0].url, world.auditor) as client:
        return str(client.get("/v1/audit/checkpoint").json()["origin"])


def _view_answered_last(world: Deployment) -> bool:
    """Whether the last lookup was answered from the in-memory view (its entry says so)."""
    with world.hub.session() as session:
        body = session.scalar(
            select(AuditEntry.body)
            .where(AuditEntry.route == "/v1/lookups")
            .order_by(AuditEntry.seq.desc())
            .limit(1)
        )
    return body is not None and json.loads(body).get("view_generation") is not None


def _answers_from_views(world: Deployment, asked: list[str], want: set[str]) -> None:
    """Both brokers answer ``want`` for ``asked``, from their views, within a minute."""
    asking = [world.toks[i] for i in asked]
    deadline = time.monotonic() + 60
    for broker in world.brokers:
        with make_client(broker.url, world.molsa) as client:
            while True:
                status, flagged = lookup(client, asking)
                if status == 200 and flagged == want and _view_answered_last(world):
                    break
                assert time.monotonic() < deadline, (status, len(flagged), len(want))
                time.sleep(0.1)


def _metric(url: str, creds: AgencyCredentials, name: str) -> float:
    with make_client(url, creds) as client:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} is not exported")


def test_a_point_in_time_restore_is_noticed_and_a_witness_reports_the_rollback(
    tmp_path: Path, stack: ExitStack
) -> None:
    clusters = stack.enter_context(Clusters())
    archive = clusters.archive
    primary = clusters.new(
        "primary",
        wal_level="replica",
        archive_mode="on",
        archive_command=f"test ! -f {archive}/%f && cp %p {archive}/%f",
    ).start()
    primary.query("CREATE DATABASE matchhub")
    restored = clusters.adopt(Cluster(clusters.root, "restored"))  # its port is in the URL
    # A checkpoint at every entry: the witness must hold one newer than the restore target
    # (checkpoints are signed on the log's schedule, never for a request).
    world = deploy(tmp_path, stack, multi_host_url(primary, restored), audit_checkpoint_every="1")
    pids = [b.pid for b in world.brokers]
    ids = world.ids
    first, second, third = ids[:30], ids[20:50], ids[40:70]
    asked = ids[10:60]
    push_roster(world, ids[:70])
    primary.base_backup(restored.data)  # tonight's base backup
    push_loans(world, world.brokers[0].url, first)
    _answers_from_views(world, asked, world.flagged([i for i in asked if i in first]))
    (target,) = primary.query("SELECT now()::text")[0]  # the point the operator restores to
    time.sleep(1.0)
    replaced = push_loans(world, world.brokers[1].url, second)
    _answers_from_views(world, asked, world.flagged([i for i in asked if i in second]))
    witness = Witness(tmp_path / "witness.json", _verifier(world), _origin(world))
    held = witness_checkpoint(world, world.brokers[0].url, witness)
    (segment,) = primary.query("SELECT pg_walfile_name(pg_switch_wal())")[0]
    deadline = time.monotonic() + 60
    while primary.query("SELECT last_archived_wal FROM pg_stat_archiver")[0][0] != segment:
        assert time.monotonic() < deadline, "the WAL was not archived"
        time.sleep(0.1)
    primary.stop("immediate")  # the database is lost; restore it to `target`

    restored.configure(
        port=restored.port,
        archive_mode="off",
        restore_command=f"cp {archive}/%f %p",
        recovery_target_time=target,
        recovery_target_action="promote",
    )
    (restored.data / "recovery.signal").touch()
    restored.start()
    restored.wait_writable()

    # A witness that holds a checkpoint newer than the restored log reports the rollback.
    with make_client(world.brokers[0].url, world.auditor) as client:
        now = client.get("/v1/audit/checkpoint").json()
    with pytest.raises(CheckpointError) as refused:
        witness.update(now["note"])
    assert refused.value.reason in (Reason.ROLLBACK, Reason.INCONSISTENT)
    assert now["size"] < held["size"]
    # The brokers noticed by themselves and reloaded their views, without a restart: they
    # answer the restored state from their views.
    _answers_from_views(world, asked, world.flagged([i for i in asked if i in first]))
    assert [b.pid for b in world.brokers] == pids
    assert all(b.process.poll() is None for b in world.brokers)
    for broker in world.brokers:
        assert _metric(broker.url, world.monitor, "matchhub_database_history_changes") >= 1
    # A new snapshot on the restored database (whose ids may be issued again: a sequence goes
    # back with it) is answered from the renewed views.
    pushed = push_loans(world, world.brokers[1].url, third)
    with world.hub.session() as session:
        ids_of = {
            u: session.scalar(select(Snapshot.id).where(Snapshot.upload_id == u))
            for u in (replaced["id"], pushed["id"])
        }
    assert ids_of[replaced["id"]] is None  # the lost upload is gone with its history
    assert pushed["id"] != replaced["id"]
    _answers_from_views(world, asked, world.flagged([i for i in asked if i in third]))
    # The host's snapshot segments (one folder, both brokers) are the restored history's:
    # named by its timeline; the lost history's, never read again, are swept.
    (wal,) = restored.query("SELECT pg_walfile_name(pg_current_wal_lsn())")[0]
    folder = world.hub.settings.paths.segments
    deadline = time.monotonic() + 60
    while {p.name.split("-")[1] for p in folder.glob("*.seg")} != {str(int(wal[:8], 16))}:
        assert time.monotonic() < deadline, sorted(p.name for p in folder.glob("*.seg"))
        time.sleep(0.1)
    report = verify_audit_log(world.hub, tmp_path / "export")
    assert report.entries > 0
