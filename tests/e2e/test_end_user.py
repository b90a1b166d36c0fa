"""``Matchhub-End-User``: the staff member a desk acts for, recorded on every entry its requests
cause (the match job's later states included), filterable by auditors, refused from providers,
checked for shape, and never a name in the log."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from matchhub.agency.connector.client import make_client
from matchhub.agency.connector.push import push
from matchhub.protocol.kinds import AgencyKind
from tests.conftest import RunningServer
from tests.e2e.helpers import national_ids, tokens

PURPOSE = "eligibility_review"
LOAN = "bank.large_loan"
ANALYST = "du-analyst0000000000000000a"
HEADER = "Matchhub-End-User"


def _all_entries(server: RunningServer) -> list[tuple[str | None, str, str | None]]:
    with server.hub.session() as session:
        rows = session.execute(
            text("SELECT agency, body, end_user FROM audit_entries ORDER BY seq")
        ).all()
    return [(agency, body, end_user) for agency, body, end_user in rows]


def _wait(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/match-jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError("the job did not finish")


def test_every_entry_the_desk_causes_names_its_staff_member(server: RunningServer) -> None:
    hub = server.hub
    key = hub.matching_key()
    ids = national_ids(20, seed=5)
    toks = tokens(key, ids)
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    auditor = hub.add_agency("auditor", AgencyKind.auditor)
    with make_client(server.url, bank) as client:
        push(client, kind="flags", key_version=key.version, flags=[LOAN],
             rows=[(toks[i], [LOAN]) for i in ids[:6]])  # fmt: skip
    before = len(_all_entries(server))
    desk = make_client(server.url, molsa)
    desk.headers[HEADER] = ANALYST
    with desk:
        push(desk, kind="roster", key_version=key.version, flags=[],
             rows=[(toks[i], []) for i in ids])  # fmt: skip
        lookup = desk.post("/v1/lookups", json={"purpose": PURPOSE, "tokens": [toks[ids[0]]]})
        assert lookup.status_code == 200, lookup.text
        opened = desk.post("/v1/match-jobs", json={"purpose": PURPOSE})
        assert opened.status_code == 201, opened.text
        job = _wait(desk, opened.json()["id"])
        assert job["state"] == "succeeded"
        assert desk.get(f"/v1/match-jobs/{job['id']}/results").status_code == 200
    # A request of the ministry's own without the header (a script) names no one.
    with make_client(server.url, molsa) as plain:
        assert plain.get("/v1/whoami").status_code == 200

    caused = _all_entries(server)[before:-1]
    kinds = {body.split('"kind":"')[1].split('"')[0] for _, body, _ in caused}
    assert kinds == {"request", "job"}  # the job's queued/running/succeeded entries too
    assert len(caused) >= 8
    for agency, body, end_user in caused:
        assert end_user == ANALYST, body
        assert f'"end_user":"{ANALYST}"' in body  # in the hashed body, not only the column
        assert agency in ("molsa", None)
    assert _all_entries(server)[-1][2] is None

    with make_client(server.url, auditor) as client:
        client.headers[HEADER] = "du-auditor000000000000000b"
        found = client.get("/v1/audit/entries", params={"end_user": ANALYST, "limit": 1000})
        assert found.status_code == 200, found.text
        entries = found.json()["entries"]
        assert [e["end_user"] for e in entries] == [ANALYST] * len(caused)
        assert {e["entry"]["end_user"] for e in entries} == {ANALYST}
        bad = client.get("/v1/audit/entries", params={"end_user": "Ahmed Ali"})
        assert bad.status_code == 422
    # The auditor's own request is recorded with its own staff member.
    assert _all_entries(server)[-2][2] == "du-auditor000000000000000b"


@pytest.mark.parametrize(
    ("value", "status", "code"),
    [
        ("du-analyst0000000000000000a", 403, "end_user_not_allowed"),
        ("أحمد علي حسين", 422, "invalid_end_user"),
        ("Ahmed.Ali.Hussein", 422, "invalid_end_user"),
        ("199012345678", 422, "invalid_end_user"),
        ("short", 422, "invalid_end_user"),
    ],
)
def test_a_provider_or_a_malformed_end_user_is_refused_and_never_recorded(
    server: RunningServer, value: str, status: int, code: str
) -> None:
    hub = server.hub
    kind = AgencyKind.bank if status == 403 else AgencyKind.welfare
    creds = hub.add_agency("caller", kind)
    with make_client(server.url, creds) as client:
        response = client.get("/v1/whoami", headers={HEADER: value.encode()})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert value not in response.text
    agency, body, end_user = _all_entries(server)[-1]
    assert (agency, end_user) == ("caller", None)
    assert f'"error":"{code}"' in body
    assert '"end_user":' not in body
    assert value.encode().decode("latin-1") not in body
    assert value not in body
