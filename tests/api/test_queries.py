"""Welfare queries against the app in process, with several providers, on SQLite and
PostgreSQL: lookups, match jobs, and every bad input."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from matchhub.agency.connector.client import AgencyCredentials
from matchhub.agency.connector.push import push
from matchhub.catalogue import service as catalogue
from matchhub.jobs.models import MatchJob
from matchhub.jobs.repository import JobRepository
from matchhub.jobs.runner import PLAN_ATTEMPTS, JobRunner
from matchhub.lookups.schemas import LookupResponse
from matchhub.protocol.kinds import AgencyKind
from matchhub.protocol.tokens import MatchingKey
from tests.api.test_uploads import _purged
from tests.conftest import InProcessApi, RunningServer
from tests.e2e.helpers import national_ids, tokens

LOAN, FUEL, GEN, PENSION = (
    "bank.large_loan",
    "trade.fuel_station_owner",
    "trade.generator_owner",
    "pension.recipient",
)
PURPOSE = "eligibility_review"


@dataclass
class World:
    broker: InProcessApi | RunningServer
    key: MatchingKey
    ids: list[str]
    toks: dict[str, str]
    roster: list[str]
    creds: dict[str, AgencyCredentials]
    truth: dict[str, set[tuple[str, str]]]  # raw id -> {(flag, source kind)} the providers hold

    def client(self, code: str) -> httpx.Client:
        return self.broker.client(self.creds[code])

    def push(self, code: str, flags: list[str], rows: dict[str, list[str]]) -> None:
        with self.client(code) as client:
            push(
                client,
                kind="flags",
                key_version=self.key.version,
                flags=flags,
                rows=[(self.toks[i], f) for i, f in rows.items()],
                chunk_rows=7,
            )


def _world(broker: InProcessApi | RunningServer) -> World:
    """Six agencies, a roster and four providers' snapshots, on the app in process or a real
    server (end-to-end tests build the same world)."""
    hub = broker.hub
    key = hub.matching_key()
    ids = national_ids(60, seed=21)
    creds = {
        "rafidain": hub.add_agency("rafidain", AgencyKind.bank),
        "ashur": hub.add_agency("ashur", AgencyKind.bank),
        "trade": hub.add_agency("trade", AgencyKind.trade),
        "pension": hub.add_agency("pension", AgencyKind.pension),
        "molsa": hub.add_agency("molsa", AgencyKind.welfare),
        "auditor": hub.add_agency("auditor", AgencyKind.auditor),
    }
    world = World(broker, key, ids, tokens(key, ids), ids[:45], creds, {})
    world.push("rafidain", [LOAN], {i: [LOAN] for i in ids[0:10]})
    world.push("ashur", [LOAN], {i: [LOAN] for i in ids[5:15]})
    world.push(
        "trade",
        [FUEL, GEN],
        {
            **{i: [FUEL] for i in ids[20:22]},
            **{i: [FUEL, GEN] for i in ids[22:25]},
            **{i: [GEN] for i in ids[25:30]},
        },
    )
    world.push("pension", [PENSION], {i: [PENSION] for i in ids[40:50]})
    with world.client("molsa") as client:
        push(
            client,
            kind="roster",
            key_version=key.version,
            flags=[],
            rows=[(world.toks[i], []) for i in world.roster],
            chunk_rows=10,
        )
    world.truth = {i: set() for i in ids}
    for i in ids[0:15]:
        world.truth[i].add((LOAN, "bank"))
    for i in ids[20:25]:
        world.truth[i].add((FUEL, "trade"))
    for i in ids[22:30]:
        world.truth[i].add((GEN, "trade"))
    for i in ids[40:50]:
        world.truth[i].add((PENSION, "pension"))
    return world


def _lookup(world: World, raws: list[str], purpose: str = PURPOSE) -> dict[str, Any]:
    with world.client("molsa") as client:
        response = client.post(
            "/v1/lookups", json={"purpose": purpose, "tokens": [world.toks[i] for i in raws]}
        )
    assert response.status_code == 200, response.text
    # The route sends bytes it serialised itself: exactly the documented model, nothing more.
    assert response.headers["content-type"] == "application/json"
    model = LookupResponse.model_validate_json(response.content)
    assert model.model_dump(mode="json") == response.json()
    by_token = {r["token"]: r for r in response.json()["results"]}
    return {raw: by_token[world.toks[raw]] for raw in raws}


def _flags(result: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["code"], f["source"]) for f in result["flags"]}


def test_lookups_answer_granted_flags_of_roster_members_only(api: InProcessApi) -> None:
    world = _world(api)
    answers = _lookup(world, world.ids)
    for raw in world.roster:
        assert answers[raw]["on_roster"] is True
        assert _flags(answers[raw]) == world.truth[raw], raw
    for raw in world.ids[45:]:
        # Off the roster: no flags, even where a provider (the pension authority) holds one.
        assert answers[raw] == {"token": world.toks[raw], "on_roster": False, "flags": []}
    assert any(world.truth[raw] for raw in world.ids[45:50])
    dates = {f["as_of"] for raw in world.roster for f in answers[raw]["flags"]}
    assert len(dates) == 1  # the snapshot date of the pushes (today)


@pytest.mark.settings(request_concurrency=2, lookup_burst=1000, job_workers=0)
def test_a_burst_of_more_clients_than_connections_is_answered(api: InProcessApi) -> None:
    """48 concurrent lookups against a pool of 2 + 8 connections: admission control lets two in
    at a time, so none waits on the pool while holding a request thread (which would stall all
    of them until the pool's 30 s timeout) and every one is answered, quickly and correctly."""
    world = _world(api)
    expected = _lookup(world, world.roster[:5])
    body = {"purpose": PURPOSE, "tokens": [world.toks[raw] for raw in world.roster[:5]]}
    results: list[tuple[int, float, Any]] = []

    def one() -> None:
        with world.client("molsa") as client:
            started = time.monotonic()
            response = client.post("/v1/lookups", json=body)
            results.append((response.status_code, time.monotonic() - started, response.json()))

    threads = [threading.Thread(target=one) for _ in range(48)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [status for status, _, _ in results] == [200] * 48
    assert max(seconds for _, seconds, _ in results) < 20
    for _, _, answer in results:
        assert {r["token"]: r for r in answer["results"]} == {
            world.toks[raw]: expected[raw] for raw in world.roster[:5]
        }


def test_a_flag_not_granted_for_the_purpose_never_appears(api: InProcessApi) -> None:
    world = _world(api)
    with api.hub.session() as session:
        catalogue.revoke_grant(session, "kind:welfare", PENSION, "appeal_investigation")
    appeal = _lookup(world, world.roster, "appeal_investigation")
    review = _lookup(world, world.roster, PURPOSE)
    assert all(f["code"] != PENSION for r in appeal.values() for f in r["flags"])
    assert any(f["code"] == PENSION for r in review.values() for f in r["flags"])


def test_a_replaced_snapshot_shows_in_the_next_lookup(api: InProcessApi) -> None:
    world = _world(api)
    before = _lookup(world, world.ids[0:12])
    assert (LOAN, "bank") in _flags(before[world.ids[0]])
    # Rafidain's borrowers ids[0:5] pay off their loans (Ashur still holds ids[5:15]).
    world.push("rafidain", [LOAN], {i: [LOAN] for i in world.ids[5:10]})
    after = _lookup(world, world.ids[0:12])
    assert all(_flags(after[i]) == set() for i in world.ids[0:5])
    assert all(_flags(after[i]) == {(LOAN, "bank")} for i in world.ids[5:12])


def _wait(client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/match-jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")


def _ndjson(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.text.splitlines():
        yield json.loads(line)


def test_a_match_job_equals_the_lookups_of_every_roster_token(api: InProcessApi) -> None:
    world = _world(api)
    with world.client("molsa") as client:
        opened = client.post("/v1/match-jobs", json={"purpose": PURPOSE})
        assert opened.status_code == 201, opened.text
        assert opened.json()["state"] in ("queued", "running", "succeeded")
        job = _wait(client, opened.json()["id"])
        assert job["state"] == "succeeded", job
        ndjson = client.get(f"/v1/match-jobs/{job['id']}/results")
        as_csv = client.get(f"/v1/match-jobs/{job['id']}/results", headers={"accept": "text/csv"})
    assert ndjson.headers["content-type"].startswith("application/x-ndjson")
    results = {line["token"]: line for line in _ndjson(ndjson)}
    # Lines are assembled from fragments: still exactly the compact JSON of each line.
    assert ndjson.text == "".join(
        json.dumps(line, separators=(",", ":")) + "\n" for line in _ndjson(ndjson)
    )
    lookups = _lookup(world, world.roster)
    expected = {
        world.toks[raw]: lookups[raw]["flags"] for raw in world.roster if lookups[raw]["flags"]
    }
    assert {t: sorted(r["flags"], key=str) for t, r in results.items()} == {
        t: sorted(f, key=str) for t, f in expected.items()
    }
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {(r["token"], r["flag"], r["source"]) for r in rows} == {
        (t, f["code"], f["source"]) for t, flags in expected.items() for f in flags
    }
    summary = job["summary"]
    assert summary["roster_size"] == len(world.roster)
    assert summary["flagged_beneficiaries"] == len(expected)
    per_flag: dict[str, int] = {}
    for raw in world.roster:
        for flag, _ in world.truth[raw]:
            per_flag[flag] = per_flag.get(flag, 0) + 1
    assert summary["per_flag"] == dict(sorted(per_flag.items()))
    assert summary["per_source"] == {"bank": 15, "pension": 5, "trade": 10}
    assert job["roster_version"] == summary["roster_version"]
    # Which snapshots the job read, never how big each is: the pension fund's 10 rows include
    # 5 people off the ministry's roster (issue 13, item 9).
    assert sorted((s["flag"], s["source"]) for s in summary["sources"]) == sorted(
        [(FUEL, "trade"), (GEN, "trade"), (LOAN, "bank"), (LOAN, "bank"), (PENSION, "pension")]
    )
    assert all(set(s) == {"flag", "source", "as_of"} for s in summary["sources"])
    # A summary stored before this rule still carried the counts: it is read without them.
    with world.broker.hub.session() as session:
        stored = session.get(MatchJob, job["id"])
        assert stored is not None
        assert stored.summary is not None
        stored.summary = {
            **stored.summary,
            "sources": [{**s, "rows": 10} for s in stored.summary["sources"]],
        }
    with world.client("molsa") as client:
        again = client.get(f"/v1/match-jobs/{job['id']}").json()["summary"]
    assert again == summary
    # Read in batches of any size, the results are the same, in the same order.
    with world.broker.hub.session() as session:
        stored = session.get(MatchJob, job["id"])
        assert stored is not None
        whole, small = (list(JobRepository(session).results(stored, b)) for b in (5000, 4))
    assert len(small) > len(whole)
    assert [s for sources, _ in small for s in sources] == [
        s for sources, _ in whole for s in sources
    ]
    assert b"".join(sealed for _, sealed in small) == b"".join(sealed for _, sealed in whole)


@pytest.mark.parametrize("replacements", [1, PLAN_ATTEMPTS])
def test_a_snapshot_replaced_and_purged_between_plan_and_load(
    api: InProcessApi, monkeypatch: pytest.MonkeyPatch, replacements: int
) -> None:
    """The interleaving forced: after the job's plan has committed and before its load, the
    pension fund replaces its snapshot and the replaced rows are purged. The job plans again
    and reads the replacement; if the snapshots keep changing it fails with the reason. It
    never succeeds without the source (before: the purged snapshot loaded as 0 rows)."""
    world = _world(api)
    load = JobRunner._ensure_loaded
    replaced: list[int] = []

    def interleaved(
        runner: JobRunner, roster_id: int, source_ids: list[int], expected: dict[int, int]
    ) -> None:
        if len(replaced) < replacements:
            offset = 30 - len(replaced)  # each replacement other rows: ids[30:40], ids[29:39]
            world.push("pension", [PENSION], {i: [PENSION] for i in world.ids[offset:][:10]})
            _purged(api.hub)
            # A host without the replaced snapshot's segment (a fresh worker's): the load
            # reads the database, where its rows are gone. (With the segment, the job reads
            # the immutable file of the snapshot its plan named: exact too.)
            # (The folder may not be there yet: the view may not have loaded any segment. A
            # build in the background may rename its temporary file meanwhile.)
            runner.segments.release(set(source_ids))
            if runner.segments.directory.is_dir():
                for file in runner.segments.directory.iterdir():
                    file.unlink(missing_ok=True)
            replaced.append(offset)
        load(runner, roster_id, source_ids, expected)

    monkeypatch.setattr(JobRunner, "_ensure_loaded", interleaved)
    with world.client("molsa") as client:
        job = _wait(client, client.post("/v1/match-jobs", json={"purpose": PURPOSE}).json()["id"])
    assert len(replaced) == replacements
    if replacements == PLAN_ATTEMPTS:
        assert job["state"] == "failed"
        assert "snapshots changed while the job was loading them" in job["reason"]
        return
    assert job["state"] == "succeeded", job
    # The replacement's ten pensioners, all on the roster (the first snapshot had five there).
    assert job["summary"]["per_source"]["pension"] == 10
    assert job["summary"]["per_flag"][PENSION] == 10


def test_a_job_on_a_flag_subset(api: InProcessApi) -> None:
    world = _world(api)
    with world.client("molsa") as client:
        opened = client.post("/v1/match-jobs", json={"purpose": PURPOSE, "flags": [FUEL]})
        job = _wait(client, opened.json()["id"])
        lines = list(_ndjson(client.get(f"/v1/match-jobs/{job['id']}/results")))
    assert {line["token"] for line in lines} == {world.toks[i] for i in world.ids[20:25]}
    assert all([f["code"] for f in line["flags"]] == [FUEL] for line in lines)


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


@pytest.mark.settings(lookup_burst=40, lookup_rate_per_second=0.5, job_workers=0)
def test_bad_queries_are_refused_with_stable_codes(api: InProcessApi) -> None:
    world = _world(api)
    with api.hub.session() as session:
        catalogue.add_purpose(session, "fraud_investigation", "Fraud", "احتيال", "TEST-ONLY")
    other = api.hub.add_agency("kurdistan-welfare", AgencyKind.welfare)
    world.creds["other"] = other
    tok = [world.toks[i] for i in world.roster[:3]]
    with ExitStack() as stack:
        molsa = stack.enter_context(world.client("molsa"))

        def lookup(body: dict[str, Any]) -> tuple[int, str]:
            return _error(molsa.post("/v1/lookups", json=body))

        assert lookup({"tokens": tok}) == (422, "purpose_required")
        assert lookup({"purpose": "curiosity", "tokens": tok}) == (422, "unknown_purpose")
        assert lookup({"purpose": "fraud_investigation", "tokens": tok}) == (
            403,
            "purpose_not_granted",
        )
        assert lookup({"purpose": PURPOSE, "tokens": tok * 334}) == (422, "too_many_tokens")
        assert lookup({"purpose": PURPOSE, "tokens": [tok[0].upper()]}) == (422, "invalid_token")
        assert lookup({"purpose": PURPOSE, "tokens": [world.ids[0]]}) == (
            422,
            "raw_identifier_refused",
        )
        assert lookup({"purpose": PURPOSE, "tokens": tok, "key_version": "v9"}) == (
            422,
            "wrong_key_version",
        )
        assert lookup({"purpose": PURPOSE, "tokenz": tok}) == (422, "invalid_request")

        def open_job(body: dict[str, Any], client: httpx.Client = molsa) -> tuple[int, str]:
            return _error(client.post("/v1/match-jobs", json=body))

        assert open_job({}) == (422, "purpose_required")
        assert open_job({"purpose": PURPOSE, "flags": ["bank.no_such"]}) == (
            403,
            "flag_not_granted",
        )
        other_client = stack.enter_context(world.client("other"))
        assert open_job({"purpose": PURPOSE}, other_client) == (409, "no_roster")

        queued = molsa.post("/v1/match-jobs", json={"purpose": PURPOSE}).json()
        assert queued["state"] == "queued"  # no job workers in this test
        assert _error(molsa.get(f"/v1/match-jobs/{queued['id']}/results")) == (409, "job_not_done")
        assert _error(other_client.get(f"/v1/match-jobs/{queued['id']}")) == (404, "job_not_found")
        assert _error(other_client.get(f"/v1/match-jobs/{queued['id']}/results")) == (
            404,
            "job_not_found",
        )
        assert molsa.get("/v1/match-jobs/not-a-job-id").status_code == 422

        for code in ("rafidain", "auditor"):
            client = stack.enter_context(world.client(code))
            assert _error(client.post("/v1/lookups", json={"purpose": PURPOSE, "tokens": tok})) == (
                403,
                "scope_denied",
            )
            assert _error(client.post("/v1/match-jobs", json={"purpose": PURPOSE})) == (
                403,
                "scope_denied",
            )
            assert _error(client.get(f"/v1/match-jobs/{queued['id']}")) == (403, "scope_denied")

        statuses = [
            molsa.post("/v1/lookups", json={"purpose": PURPOSE, "tokens": tok}) for _ in range(45)
        ]
        limited = [r for r in statuses if r.status_code == 429]
        assert limited, "the rate limit never applied"
        assert limited[0].json()["error"]["code"] == "rate_limited"
        assert int(limited[0].headers["retry-after"]) >= 1
