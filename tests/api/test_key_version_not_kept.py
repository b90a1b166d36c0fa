"""An upload's key_version is free text (operators name versions). A national ID sent there is
refused (unknown_key_version), neither echoed in the answer nor kept in the refusal's audit
entry (the log is append-only), as for purposes, flags and reasons
(test_a_national_id_sent_as_a_purpose_or_a_flag_never_reaches_the_log). Found in review."""

from __future__ import annotations

import json

from matchhub.protocol.kinds import AgencyKind
from tests.api.test_bad_input import _audit
from tests.conftest import InProcessApi


def test_a_national_id_sent_as_a_key_version_never_reaches_the_log(api: InProcessApi) -> None:
    raw = "199012345678"
    with api.client(api.hub.add_agency("rafidain", AgencyKind.bank), attempts=1) as client:
        body = {
            "kind": "flags",
            "key_version": raw,
            "flags": ["bank.large_loan"],
            "expected_rows": 1,
        }
        response = client.post("/v1/uploads", json=body)
    assert response.status_code == 422
    entries = _audit(api, since="2000-01-01T00:00:00Z").json()["entries"]
    assert [e for e in entries if e["agency"] == "rafidain"]
    in_log, in_answer = raw in json.dumps(entries), raw in response.text
    assert (in_log, in_answer) == (False, False)
