"""Per-agency caps (issue 13 item 3): open uploads per agency and queued match jobs per
consumer, each refusal a 429 with its own code that changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from matchhub.agency.connector.push import push
from matchhub.jobs.models import MatchJob
from matchhub.protocol.kinds import AgencyKind
from matchhub.uploads.models import Upload
from tests.conftest import InProcessApi
from tests.e2e.helpers import national_ids, tokens

LOAN = "bank.large_loan"


def _count(api: InProcessApi, model: type[Upload] | type[MatchJob]) -> int:
    with api.hub.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.settings(max_open_uploads_per_agency=2)
def test_an_agency_may_hold_only_so_many_uploads_open(api: InProcessApi) -> None:
    key = api.hub.matching_key()
    api.hub.add_agency("rafidain", AgencyKind.bank)
    api.hub.add_agency("ashur", AgencyKind.bank)
    body = {"kind": "flags", "key_version": key.version, "flags": [LOAN], "expected_rows": 1}
    with api.client("rafidain") as client:
        opened = [client.post("/v1/uploads", json=body) for _ in range(2)]
        assert [r.status_code for r in opened] == [201, 201]
        refused = client.post("/v1/uploads", json=body)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too_many_open_uploads"
        assert _count(api, Upload) == 2  # the refusal changed nothing
        # Another agency has its own allowance; aborting one frees a place.
        with api.client("ashur") as other:
            assert other.post("/v1/uploads", json=body).status_code == 201
        upload = opened[0].json()["id"]
        assert client.delete(f"/v1/uploads/{upload}").status_code == 200
        assert client.post("/v1/uploads", json=body).status_code == 201


@pytest.mark.settings(max_queued_jobs_per_consumer=2, job_workers=0)
def test_a_consumer_may_queue_only_so_many_match_jobs(api: InProcessApi) -> None:
    key = api.hub.matching_key()
    api.hub.add_agency("molsa", AgencyKind.welfare)
    roster = tokens(key, national_ids(5, seed=3))
    with api.client("molsa") as client:
        push(
            client,
            kind="roster",
            key_version=key.version,
            flags=[],
            rows=[(t, []) for t in roster.values()],
            chunk_rows=5,
        )
        job = {"purpose": "eligibility_review"}
        assert [client.post("/v1/match-jobs", json=job).status_code for _ in range(2)] == [
            201,
            201,
        ]
        refused = client.post("/v1/match-jobs", json=job)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too_many_queued_jobs"
        assert refused.headers["retry-after"] == "30"
    assert _count(api, MatchJob) == 2
