"""The auditors' filters and keyset paging of ``GET /v1/audit/entries``: outcome and error code,
periods, newest first with a cursor, and bad filters refused with a code and recorded as the
auditor's own refused read, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from matchhub.protocol.kinds import AgencyKind
from tests.conftest import Hub, InProcessApi


def _page(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/audit/entries", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _size(hub: Hub) -> int:
    with hub.session() as session:
        return int(session.execute(text("SELECT size FROM audit_state")).scalar_one())


def test_filters_by_outcome_error_and_period_and_pages_newest_first(api: InProcessApi) -> None:
    hub = api.hub
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    auditor = hub.add_agency("audit-board", AgencyKind.auditor)
    with api.client(molsa) as client:
        for _ in range(3):
            assert client.get("/v1/whoami").status_code == 200
        refused = client.post("/v1/lookups", json={"purpose": "gossip", "tokens": ["ab" * 32]})
        assert refused.status_code >= 400
        code = refused.json()["error"]["code"]
        assert client.get("/v1/audit/entries").status_code == 403
    with api.client(auditor) as client:
        everything = _page(client, limit=1000)["entries"]
        refusals = _page(client, outcome="refused", agency="molsa", limit=1000)["entries"]
        assert [e["route"] for e in refusals] == ["/v1/lookups", "/v1/audit/entries"]
        assert all(e["entry"]["outcome"] == "refused" for e in refusals)
        by_code = _page(client, error=code, limit=1000)["entries"]
        assert [e["route"] for e in by_code] == ["/v1/lookups"]
        accepted = _page(client, outcome="accepted", agency="molsa", limit=1000)["entries"]
        assert [e["route"] for e in accepted] == ["/v1/whoami"] * 3

        # Newest first, three at a time, by cursor: every entry once, in reverse.
        seen: list[int] = []
        cursor = -1
        while True:
            page = _page(client, order="desc", limit=3, after=cursor)
            seen += [e["seq"] for e in page["entries"]]
            if page["next_after"] is None:
                break
            cursor = page["next_after"]
        # (Each page's own read is appended as it goes; the walk started below it.)
        assert seen == list(range(seen[0], -1, -1))
        assert seen[0] >= everything[-1]["seq"]

        # A period is a range of entries: the middle whoami alone.
        times = [datetime.fromisoformat(e["created_at"]) for e in accepted]
        middle = _page(
            client,
            agency="molsa",
            since=times[1].isoformat(),
            until=(times[1] + timedelta(microseconds=1)).isoformat(),
        )["entries"]
        assert [e["seq"] for e in middle] == [accepted[1]["seq"]]
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        assert _page(client, since=future)["entries"] == []


def test_bad_filters_get_a_code_and_change_nothing_but_their_own_entry(
    api: InProcessApi,
) -> None:
    hub = api.hub
    auditor = hub.add_agency("audit-board", AgencyKind.auditor)
    bad = [
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "invalid_period"),
        ({"since": "yesterday"}, "invalid_request"),
        ({"outcome": "maybe"}, "invalid_request"),
        ({"error": "DROP TABLE"}, "invalid_request"),
        ({"agency": "a b"}, "invalid_request"),
        ({"subject": "123456789012"}, "invalid_token"),
        ({"order": "sideways"}, "invalid_request"),
        ({"after": "-5"}, "invalid_request"),
    ]
    with api.client(auditor) as client:
        for params, code in bad:
            before = _size(hub)
            response = client.get("/v1/audit/entries", params=params)
            assert response.status_code == 422, params
            assert response.json()["error"]["code"] == code, params
            assert _size(hub) == before + 1  # the auditor's own refused read, nothing else
        last = _page(client, order="desc", limit=1)["entries"][0]["entry"]
        assert last["outcome"] == "refused"
        assert last["error"] == "invalid_request"


def test_activity_is_counted_by_the_database(api: InProcessApi) -> None:
    from matchhub.agency.connector.push import push  # noqa: PLC0415
    from tests.e2e.helpers import national_ids, tokens  # noqa: PLC0415

    hub = api.hub
    key = hub.matching_key()
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    auditor = hub.add_agency("audit-board", AgencyKind.auditor)
    ids = national_ids(6, seed=7)
    toks = tokens(key, ids)
    staff = [f"du-{name:a<26}" for name in ("amal", "basim", "chiman")]
    with api.client(molsa) as client:
        push(
            client,
            kind="roster",
            key_version=key.version,
            flags=[],
            rows=[(t, []) for t in toks.values()],
        )
        for n, user in enumerate(staff):
            wanted = [toks[ids[0]], toks[ids[n + 1]]]
            response = client.post(
                "/v1/lookups",
                json={"purpose": "eligibility_review", "tokens": wanted},
                headers={"Matchhub-End-User": user},
            )
            assert response.status_code == 200, response.text
        refused = client.post(
            "/v1/lookups",
            # The longest purpose code: unknown, refused, and counted under it. (A longer
            # one is the schema's refusal and names no purpose: tests/api/test_bad_input.py.)
            json={"purpose": "x" * 64, "tokens": [toks[ids[0]]]},
            headers={"Matchhub-End-User": staff[0]},
        )
        assert refused.status_code == 422
    now = datetime.now(UTC)
    period = {
        "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now + timedelta(hours=1)).isoformat(),
    }
    with api.client(auditor) as client:
        response = client.get(
            "/v1/audit/activity", params={**period, "utc_offset_minutes": 180, "many_staff": 3}
        )
        assert response.status_code == 200, response.text
        found = response.json()
        assert (
            client.get("/v1/audit/activity", params={**period, "since": period["until"]}).json()[
                "error"
            ]["code"]
            == "invalid_period"
        )
    lookups = [r for r in found["requests"] if r["route"] == "/v1/lookups"]
    assert sum(r["count"] for r in lookups if r["outcome"] == "accepted") == 3
    assert {r["purpose"] for r in lookups if r["outcome"] == "accepted"} == {"eligibility_review"}
    assert [len(r["purpose"]) for r in lookups if r["outcome"] == "refused"] == [64]
    local_day = (now + timedelta(minutes=180)).date().isoformat()
    assert {r["day"] for r in lookups} <= {
        local_day,
        (now + timedelta(minutes=181)).date().isoformat(),
    }
    assert sorted((p["end_user"], p["count"]) for p in found["people"]) == [(u, 2) for u in staff]
    assert sum(h["count"] for h in found["hours"]) == 3
    assert all(1 <= h["weekday"] <= 7 and 0 <= h["hour"] <= 23 for h in found["hours"])
    assert [(w["staff"], w["count"]) for w in found["widely"]] == [(staff, 3)]
    assert toks[ids[0]] not in response.text
