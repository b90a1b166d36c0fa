"""Rosters partitioned by snapshot on PostgreSQL (migration 0020), through the API: an upload
in flight across the upgrade, a discarded roster's table dropped, a push resumed after the
broker is killed, racing commits, a job's results outliving its roster's replacement (written in
review)."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta

import pytest
from sqlalchemy import text

from matchhub.agency.connector.client import AgencyCredentials, make_client
from matchhub.agency.connector.push import Chunk, PushClient, compact_chunks, push
from matchhub.cli.processes import BrokerProcess
from matchhub.kit.db import make_engine
from matchhub.kit.migrate import downgrade, upgrade
from matchhub.kit.models import utcnow
from matchhub.protocol.kinds import AgencyKind
from matchhub.protocol.tokens import MatchingKey
from matchhub.protocol.wire import COMPACT, chunks_digest
from matchhub.uploads.service import expire_stale, purge_unreachable
from tests.api.test_queries import PURPOSE, _lookup, _wait, _world
from tests.conftest import Hub, InProcessApi
from tests.e2e.helpers import national_ids, tokens


def _roster_tables(api: InProcessApi) -> list[str]:
    with api.hub.session() as session:
        return list(
            session.execute(
                text(
                    "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') "
                    "AND relname ~ '^roster_rows_[0-9]+$' ORDER BY 1"
                )
            ).scalars()
        )


def _across_0020(api: InProcessApi) -> None:
    """The database as a broker at 0019 left it (its in-flight roster's rows in the one table),
    then the operator's upgrade to the head."""
    engine = make_engine(api.hub.settings.sqlalchemy_url)
    try:
        downgrade(engine, "0019")
        upgrade(engine)
    finally:
        engine.dispose()


def _roster_chunks(
    api: InProcessApi, seed: int
) -> tuple[Hub, MatchingKey, AgencyCredentials, list[tuple[str, list[str]]], list[Chunk]]:
    """The hub (PostgreSQL only), its key, a welfare agency and its 12-row roster in 3 chunks."""
    hub = api.hub
    if not hub.settings.database_url:
        pytest.skip("PostgreSQL partitions only")
    key = hub.matching_key()
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    rows: list[tuple[str, list[str]]] = [
        (t, []) for t in tokens(key, national_ids(12, seed=seed)).values()
    ]
    return hub, key, molsa, rows, list(compact_chunks(rows, [], 4, roster=True))


@pytest.mark.parametrize("chunks_before", [1, 0])
def test_a_roster_upload_in_flight_across_0020_commits(
    api: InProcessApi, chunks_before: int
) -> None:
    """An upload open when 0020 runs (rows already sent, or none yet) resumes and commits: the
    upgrade must leave its rows where the new code's chunk COPY and commit ATTACH look for them
    (an unattached ``roster_rows_N``), as it does for one opened after it."""
    _hub, key, molsa, rows, chunks = _roster_chunks(api, seed=21)
    with api.client(molsa) as client:
        pusher = PushClient(client)
        upload = pusher.open("roster", key.version, [], len(rows))
        for chunk in chunks[:chunks_before]:
            pusher.put(upload["id"], chunk, COMPACT)
    _across_0020(api)
    with api.client(molsa) as client:
        pusher = PushClient(client)
        for chunk in chunks[chunks_before:]:
            pusher.put(upload["id"], chunk, COMPACT)
        digest = chunks_digest(hashlib.sha256(c.body).digest() for c in chunks)
        committed = pusher.commit(upload["id"], len(rows), digest)
    assert committed["state"] == "committed"


def test_a_discarded_rosters_table_is_dropped(api: InProcessApi) -> None:
    """Aborted and expired roster uploads: no ``roster_rows_N`` is left behind once a purge
    pass has run; the current roster's stays (a retired key's: tests/e2e/test_rotation.py)."""
    hub, key, molsa, rows, chunks = _roster_chunks(api, seed=22)
    with api.client(molsa) as client:
        pusher = PushClient(client)
        aborted = pusher.open("roster", key.version, [], len(rows))
        pusher.put(aborted["id"], chunks[0], COMPACT)
        pusher.abort(aborted["id"])
        expired = pusher.open("roster", key.version, [], len(rows))
        pusher.put(expired["id"], chunks[0], COMPACT)
        kept = pusher.send(
            pusher.open("roster", key.version, [], len(rows))["id"],
            lambda: iter(chunks),
            COMPACT,
            len(rows),
        )
    with hub.session() as session:
        assert expire_stale(session, utcnow() + timedelta(days=30)) == [expired["id"]]
    with hub.session() as session:
        purge_unreachable(session)
    assert _roster_tables(api) == [f"roster_rows_{kept.upload['roster_version']}"]


def test_a_roster_upload_resumes_after_the_broker_is_killed(hub: Hub) -> None:
    """kill -9 of the broker mid-roster: its rows so far stay in the pending table, the upload
    goes on from the next chunk, the commit attaches the table with every row, once."""
    key = hub.matching_key()
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    rows: list[tuple[str, list[str]]] = [
        (t, []) for t in tokens(key, national_ids(40, seed=23)).values()
    ]
    chunks = list(compact_chunks(rows, [], 10, roster=True))
    env = {"MATCHHUB_DATABASE_URL": hub.settings.database_url or ""}
    broker = BrokerProcess(hub.settings.home, molsa, env=env).start()
    try:
        with make_client(broker.url, molsa) as client:
            pusher = PushClient(client)
            upload = pusher.open("roster", key.version, [], len(rows))
            for chunk in chunks[:2]:
                pusher.put(upload["id"], chunk, COMPACT)
        broker.kill()
        broker.start()
        with make_client(broker.url, molsa) as client:
            pusher = PushClient(client)
            assert pusher.status(upload["id"])["next_seq"] == 2
            pusher.put(upload["id"], chunks[1], COMPACT)  # a retried chunk: a duplicate
            for chunk in chunks[2:]:
                pusher.put(upload["id"], chunk, COMPACT)
            digest = chunks_digest(hashlib.sha256(c.body).digest() for c in chunks)
            committed = pusher.commit(upload["id"], len(rows), digest)
            again = pusher.commit(upload["id"], len(rows), digest)  # its answer "lost"
        assert committed["state"] == again["state"] == "committed"
    finally:
        broker.stop()
    with hub.session() as session:
        counted = session.execute(
            text(
                "SELECT count(*), count(DISTINCT ordinal) FROM roster_rows WHERE snapshot_id = :s"
            ),
            {"s": committed["roster_version"]},
        ).one()
    assert tuple(counted) == (40, 40)


def test_two_commits_of_one_roster_racing_attach_it_once(api: InProcessApi) -> None:
    """The same commit sent twice at once (a client's blind retry): one attaches the roster's
    table, the other answers the committed upload; neither fails."""
    hub = api.hub
    key = hub.matching_key()
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    rows: list[tuple[str, list[str]]] = [
        (t, []) for t in tokens(key, national_ids(30, seed=24)).values()
    ]
    chunks = list(compact_chunks(rows, [], 10, roster=True))
    digest = chunks_digest(hashlib.sha256(c.body).digest() for c in chunks)
    with api.client(molsa) as client:
        pusher = PushClient(client)
        upload = pusher.open("roster", key.version, [], len(rows))
        for chunk in chunks:
            pusher.put(upload["id"], chunk, COMPACT)
    answers: list[object] = []

    def commit() -> None:
        with api.client(molsa) as client:
            answers.append(
                client.post(
                    f"/v1/uploads/{upload['id']}/commit",
                    json={"rows": len(rows), "chunks_sha256": digest},
                ).status_code
            )

    threads = [threading.Thread(target=commit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200, 200]


def test_a_jobs_results_outlive_its_rosters_replacement_and_the_purge(api: InProcessApi) -> None:
    """A match job's answer is given back from its roster's sealed tokens: replacing the roster
    (and a purge pass) leaves the finished job's results whole, and lookups follow the new
    roster at once."""
    world = _world(api)
    with world.client("molsa") as client:
        job = _wait(client, client.post("/v1/match-jobs", json={"purpose": PURPOSE}).json()["id"])
        before = client.get(f"/v1/match-jobs/{job['id']}/results").text
        push(
            client,
            kind="roster",
            key_version=world.key.version,
            flags=[],
            rows=[(world.toks[i], []) for i in world.ids[30:]],
            chunk_rows=10,
        )
    with api.hub.session() as session:
        purge_unreachable(session)
    with world.client("molsa") as client:
        after = client.get(f"/v1/match-jobs/{job['id']}/results")
        second = _wait(
            client, client.post("/v1/match-jobs", json={"purpose": PURPOSE}).json()["id"]
        )
    assert after.status_code == 200
    assert after.text == before
    assert before
    assert second["state"] == "succeeded"
    assert second["roster_version"] > job["roster_version"]
    assert _lookup(world, [world.ids[0]])[world.ids[0]]["on_roster"] is False
