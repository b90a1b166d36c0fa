"""Cases at the broker (issue 15): opened from a match job's result or a lookup's answer, moved
through the state machine by the consumer that opened them, refused with a code at every
illegal step, with time moved on the app's one clock, never slept through."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from matchhub.kit.clock import Clock
from tests.api.test_queries import LOAN, PURPOSE, World, _error, _ndjson, _wait, _world
from tests.conftest import InProcessApi

STAFF = {"matchhub-end-user": "du-caseworker-0001"}


def _clock(api: InProcessApi) -> Clock:
    clock = api.app.state.clock
    assert isinstance(clock, Clock)
    return clock


def _job_results(world: World) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    with world.client("molsa") as client:
        opened = client.post("/v1/match-jobs", json={"purpose": PURPOSE})
        job = _wait(client, opened.json()["id"])
        lines = _ndjson(client.get(f"/v1/match-jobs/{job['id']}/results"))
        return job["id"], {line["token"]: line["flags"] for line in lines}


def _move(client: httpx.Client, case_id: str, to: str, reason: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"to": to}
    if reason is not None:
        body["reason"] = reason
    return client.post(f"/v1/cases/{case_id}/transitions", json=body, headers=STAFF)


def test_a_case_from_a_match_job_to_an_upheld_decision(api: InProcessApi) -> None:
    world = _world(api)
    clock = _clock(api)
    job_id, results = _job_results(world)
    token = world.toks[world.ids[0]]
    assert [f["code"] for f in results[token]] == [LOAN]
    with world.client("molsa") as client:
        opened = client.post(
            "/v1/cases", json={"job": job_id, "token": token, "flags": [LOAN]}, headers=STAFF
        )
        assert opened.status_code == 201, opened.text
        case = opened.json()
        assert case["state"] == "indication"
        assert case["flags"] == [
            {"code": LOAN, "source": "bank", "as_of": results[token][0]["as_of"]}
        ]
        assert _move(client, case["id"], "verifying").json()["state"] == "verifying"
        assert _move(client, case["id"], "confirmed").json()["verification"] == "confirmed"
        notified = _move(client, case["id"], "notified").json()
        assert notified["notice_days"] == 30
        assert _error(_move(client, case["id"], "decided", "upheld")) == (409, "response_not_due")
        clock.advance(timedelta(days=31))
        decided = _move(client, case["id"], "decided", "upheld")
        assert decided.status_code == 200, decided.text
        assert _move(client, case["id"], "closed").json()["state"] == "closed"
        got = client.get(f"/v1/cases/{case['id']}").json()
    assert [e["to"] for e in got["history"]] == [
        "indication",
        "verifying",
        "confirmed",
        "notified",
        "decided",
        "closed",
    ]
    assert {e["end_user"] for e in got["history"]} == {STAFF["matchhub-end-user"]}
