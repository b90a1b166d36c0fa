"""Bad input that once reached a 500 or an undocumented answer: each is now a 4xx in the one
error shape, documented in openapi/openapi.json, and changes nothing (the 100 kB query string,
refused by the server's parser before the app: tests/e2e/test_bad_requests.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from matchhub.protocol.kinds import AgencyKind
from matchhub.protocol.wire import NDJSON
from matchhub.uploads.models import Upload
from tests.conftest import InProcessApi

DOCUMENT = json.loads(Path("openapi/openapi.json").read_text())


def _refused(response: httpx.Response, method: str, path: str, status: int, code: str) -> None:
    """``status`` with ``code`` in the one error shape (rendered alike by the gate and the
    app), and listed for the route."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.content.startswith(b'{"error":{"code":"' + code.encode() + b'","message":"')
    assert response.json()["error"]["code"] == code
    assert str(status) in DOCUMENT["paths"][path][method]["responses"]


def _audit(api: InProcessApi, **params: Any) -> httpx.Response:
    if "diwan" not in api.hub.credentials:
        api.hub.add_agency("diwan", AgencyKind.auditor)
    with api.client("diwan") as client:
        return client.get("/v1/audit/entries", params=params)


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-12-01T00:00:00"},  # no offset: was a 500 (a naive time, a UTC column)
        {"until": "2026-12-01T10:00"},
        {"until": "0.5"},  # was read as half a second after 1970
        {"since": "1764547200"},
        {"since": "yesterday"},
    ],
)
def test_audit_times_need_iso_8601_with_an_offset(
    api: InProcessApi, params: dict[str, str]
) -> None:
    _refused(_audit(api, **params), "get", "/v1/audit/entries", 422, "invalid_request")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        # Valid ISO 8601 with no UTC form: astimezone overflowed, a 500 (review of issue 13).
        ("/v1/audit/entries", {"since": "0001-01-01T00:00:00+14:00"}),
        ("/v1/audit/entries", {"until": "9999-12-31T23:59:59-14:00"}),
        (
            "/v1/audit/activity",
            {"since": "0001-01-01T00:00:00+14:00", "until": "2026-12-08T00:00:00Z"},
        ),
        # A cursor past a 64-bit integer: the driver's OverflowError, a 500.
        ("/v1/audit/entries", {"after": str(2**63)}),
        ("/v1/audit/proofs/inclusion", {"seq": str(2**63), "tree_size": "1"}),
    ],
)
def test_audit_queries_past_what_the_columns_hold(
    api: InProcessApi, path: str, params: dict[str, str]
) -> None:
    _audit(api)  # registers the auditor
    with api.client("diwan") as client:
        _refused(client.get(path, params=params), "get", path, 422, "invalid_request")


@pytest.mark.parametrize(
    "due", ["due_after=0001-01-01T00:00:00%2B14:00", "due_before=9999-12-31T23:59:59-01:00"]
)
def test_case_due_dates_past_what_the_columns_hold(api: InProcessApi, due: str) -> None:
    api.hub.add_agency("molsa", AgencyKind.welfare)
    with api.client("molsa") as client:
        _refused(client.get(f"/v1/cases?{due}"), "get", "/v1/cases", 422, "invalid_request")


def test_audit_times_with_an_offset_filter(api: InProcessApi) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert _audit(api, since="2000-01-01T00:00:00Z").json()["entries"]
    assert _audit(api, since=soon.replace("+00:00", "+03:00")).json()["entries"]  # 2 h ago
    assert _audit(api, since=soon).json()["entries"] == []


def _open(api: InProcessApi, client: httpx.Client) -> str:
    response = client.post(
        "/v1/uploads",
        json={
            "kind": "flags",
            "key_version": api.hub.matching_key().version,
            "flags": ["bank.large_loan"],
            "expected_rows": 1,
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_an_ndjson_line_nested_100000_deep_is_a_malformed_line(api: InProcessApi) -> None:
    bank = api.hub.add_agency("rafidain", AgencyKind.bank)
    with api.client(bank) as client:
        upload = _open(api, client)
        deep = b"[" * 100_000 + b"]" * 100_000 + b"\n"
        response = client.put(
            f"/v1/uploads/{upload}/chunks/0", content=deep, headers={"content-type": NDJSON}
        )
        _refused(response, "put", "/v1/uploads/{upload_id}/chunks/{seq}", 422, "malformed_line")
        assert client.get(f"/v1/uploads/{upload}").json()["rows_received"] == 0


@pytest.mark.parametrize(
    "body",
    [b'{"kind": "flags", "key_version": "\xff\xfe"}', b"[" * 100_000 + b"]" * 100_000],
    ids=["not-utf-8", "nested-100000-deep"],
)
def test_a_json_body_that_cannot_be_read_is_the_documented_400(
    api: InProcessApi, body: bytes
) -> None:
    bank = api.hub.add_agency("rafidain", AgencyKind.bank)
    with api.client(bank) as client:
        response = client.post(
            "/v1/uploads", content=body, headers={"content-type": "application/json"}
        )
    _refused(response, "post", "/v1/uploads", 400, "bad_request")
    with api.hub.session() as session:
        assert session.scalar(select(func.count()).select_from(Upload)) == 0
    # The refusal is the bank's in the log: the gate identified it before the body was read.
    (entry,) = _audit(api, agency="rafidain", outcome="refused").json()["entries"]
    assert (entry["entry"]["error"], entry["agency"]) == ("bad_request", "rafidain")


def test_refusals_of_an_unreadable_body_name_the_end_user(api: InProcessApi) -> None:
    """The gate identified the caller but not the staff member its desk named, so a body the
    route could not read was recorded without them, where every other refusal names them."""
    api.hub.add_agency("molsa", AgencyKind.welfare)
    named = {"content-type": "application/json", "matchhub-end-user": "du-abcdefghijklmnop"}
    with api.client("molsa", attempts=1) as client:
        for body, status in ((b'{"purpose": "\xff"}', 400), (b'{"purpose": "\\ud800"}', 422)):
            assert client.post("/v1/lookups", content=body, headers=named).status_code == status
        # A malformed name is refused before the body is read, as the caller's.
        wrong = {**named, "matchhub-end-user": "Huda Kareem"}
        response = client.post("/v1/lookups", content=b"{", headers=wrong)
        _refused(response, "post", "/v1/lookups", 422, "invalid_end_user")
    entries = _audit(api, agency="molsa", outcome="refused").json()["entries"]
    assert [(e["entry"]["error"], e["end_user"]) for e in entries] == [
        ("bad_request", "du-abcdefghijklmnop"),
        ("invalid_request", "du-abcdefghijklmnop"),
        ("invalid_end_user", None),
    ]
    assert "Huda" not in json.dumps(entries)
    # A provider acts for no one: refused before its body, and recorded as the bank's.
    bank = api.hub.add_agency("rafidain", AgencyKind.bank)
    with api.client(bank, attempts=1) as client:
        response = client.post("/v1/uploads", content=b"{", headers=named)
        _refused(response, "post", "/v1/uploads", 403, "end_user_not_allowed")
    (entry,) = _audit(api, agency="rafidain").json()["entries"]
    assert (entry["entry"]["error"], entry["end_user"]) == ("end_user_not_allowed", None)


@pytest.mark.parametrize(
    "as_of",
    [
        "0001-01-01",
        "1999-12-31",
        "9999-12-31",
        "+2",
        1796601600,
        "2026-12-07T00:00:00Z",
        "20261207",
    ],
)
def test_upload_as_of_lies_between_2000_and_tomorrow(api: InProcessApi, as_of: str) -> None:
    if as_of == "+2":
        as_of = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
    bank = api.hub.add_agency("rafidain", AgencyKind.bank)
    body = {
        "kind": "flags",
        "key_version": api.hub.matching_key().version,
        "flags": ["bank.large_loan"],
        "expected_rows": 1,
        "as_of": as_of,
    }
    with api.client(bank) as client:
        response = client.post("/v1/uploads", json=body)
        _refused(response, "post", "/v1/uploads", 422, "invalid_request")
        tomorrow = datetime.now(UTC).date() + timedelta(days=1)
        for fine in ("2000-01-01", tomorrow.isoformat()):
            assert client.post("/v1/uploads", json={**body, "as_of": fine}).status_code == 201
    with api.hub.session() as session:
        assert session.scalar(select(func.count()).select_from(Upload)) == 2


@pytest.mark.parametrize("count", ["1", True, 1.0], ids=["string", "bool", "float"])
def test_a_count_is_a_json_integer_not_a_string_bool_or_float(
    api: InProcessApi, count: object
) -> None:
    bank = api.hub.add_agency("rafidain", AgencyKind.bank)
    body = {
        "kind": "flags",
        "key_version": api.hub.matching_key().version,
        "flags": ["bank.large_loan"],
        "expected_rows": count,
    }
    with api.client(bank) as client:
        _refused(
            client.post("/v1/uploads", json=body), "post", "/v1/uploads", 422, "invalid_request"
        )
        upload = _open(api, client)
        commit = client.post(
            f"/v1/uploads/{upload}/commit", json={"rows": count, "chunks_sha256": "0" * 64}
        )
        _refused(commit, "post", "/v1/uploads/{upload_id}/commit", 422, "invalid_request")
        # A count no snapshot can have is the schema's refusal, not echoed into the log.
        huge = client.post(
            f"/v1/uploads/{upload}/commit", json={"rows": 10**4000, "chunks_sha256": "0" * 64}
        )
        _refused(huge, "post", "/v1/uploads/{upload_id}/commit", 422, "invalid_request")
        assert "0" * 100 not in huge.text
        assert client.get(f"/v1/uploads/{upload}").json()["state"] == "open"
    with api.hub.session() as session:
        assert session.scalar(select(func.count()).select_from(Upload)) == 1


def test_options_on_an_upload_allows_get_and_delete(api: InProcessApi) -> None:
    bank = api.hub.add_agency("rafidain", AgencyKind.bank)
    with api.client(bank) as client:
        upload = _open(api, client)
        response = client.options(f"/v1/uploads/{upload}")
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "method_not_allowed"
        assert response.headers["allow"] == "DELETE, GET"
        assert client.options("/v1/uploads").headers["allow"] == "POST"
        assert client.get(f"/v1/uploads/{upload}").json()["state"] == "open"


@pytest.mark.parametrize("written", ["1.0", "00001", " 1", "+1", "1_0", "1e1", "-0"])
def test_an_integer_in_a_path_or_query_is_written_plainly(api: InProcessApi, written: str) -> None:
    """pydantic alone read each of these as a number; a chunk sent as "00001" was chunk 1."""
    refused = _audit(api, limit=written)
    _refused(refused, "get", "/v1/audit/entries", 422, "invalid_request")
    assert refused.json()["error"]["message"] == "the query parameters do not match the schema"
    api.hub.add_agency("molsa", AgencyKind.welfare)
    with api.client("molsa") as client:
        _refused(
            client.get("/v1/cases", params={"offset": written}),
            "get",
            "/v1/cases",
            422,
            "invalid_request",
        )
    bank = api.hub.add_agency("rafidain", AgencyKind.bank)
    with api.client(bank) as client:
        upload = _open(api, client)
        chunk = client.put(
            f"/v1/uploads/{upload}/chunks/{written}",
            content=b"",
            headers={"content-type": NDJSON},
        )
        _refused(chunk, "put", "/v1/uploads/{upload_id}/chunks/{seq}", 422, "invalid_request")
        assert client.get(f"/v1/uploads/{upload}").json()["chunks_received"] == 0
    assert _audit(api, limit="1").status_code == 200  # the plain form is still read


def test_a_national_id_sent_as_a_purpose_or_a_flag_never_reaches_the_log(
    api: InProcessApi,
) -> None:
    """Refused (unknown_purpose, flag_not_granted, unknown_flag, case_not_found), but kept as
    sent in the refusal's audit entry, and so for good: the log is append-only. A purpose, a
    flag or a reason of another shape than a code names none, and is now the schema's refusal,
    which echoes nothing and leaves nothing of it to record."""
    api.hub.add_agency("molsa", AgencyKind.welfare)
    raw = "199012345678"
    transition = "/v1/cases/{case_id}/transitions"
    named = {"matchhub-end-user": "du-abcdefghijklmnop"}
    with api.client("molsa", attempts=1) as client:
        for path, body in (
            ("/v1/lookups", {"purpose": raw, "tokens": ["a" * 64]}),
            ("/v1/match-jobs", {"purpose": raw}),
            ("/v1/match-jobs", {"purpose": "eligibility_review", "flags": [raw]}),
            (transition, {"to": "refuted", "reason": raw}),
        ):
            response = client.post(path.format(case_id="0" * 32), json=body, headers=named)
            _refused(response, "post", path, 422, "invalid_request")
            assert raw not in response.text
        # A well-formed code the catalogue lacks is still named for what it is.
        unknown = client.post("/v1/match-jobs", json={"purpose": "curiosity"})
        assert unknown.json()["error"]["code"] == "unknown_purpose"
    with api.client(api.hub.add_agency("rafidain", AgencyKind.bank), attempts=1) as client:
        body = {"kind": "flags", "key_version": "v1", "flags": [raw], "expected_rows": 1}
        _refused(
            client.post("/v1/uploads", json=body), "post", "/v1/uploads", 422, "invalid_request"
        )
    entries = _audit(api, since="2000-01-01T00:00:00Z").json()["entries"]
    assert len([e for e in entries if e["agency"] in ("molsa", "rafidain")]) == 6
    assert raw not in json.dumps(entries)


def test_a_query_parameter_given_twice_is_refused_naming_it(api: InProcessApi) -> None:
    """`?limit=1&limit=3` was read as its last value: which one counts is a guess the broker
    will not make (HTTP parameter pollution). Refused, and recorded as the caller's."""
    _audit(api)  # registers the auditor
    named = {"matchhub-end-user": "du-abcdefghijklmnop"}
    with api.client("diwan", attempts=1) as client:
        for query, parameter in (
            ("limit=1&limit=3", "limit"),
            ("limit=2&limit=2", "limit"),  # the same value twice is still twice
            ("agency=diwan&limit=5&agency=molsa", "agency"),
            ("since=2026-01-01T00:00:00Z&since=", "since"),
        ):
            response = client.get(f"/v1/audit/entries?{query}", headers=named)
            _refused(response, "get", "/v1/audit/entries", 400, "repeated_parameter")
            assert response.json()["error"]["details"] == {"parameter": parameter}
        # A repeat the route never reads changes nothing it does.
        assert client.get("/v1/whoami?x=1&x=2").status_code == 200
        assert client.get("/v1/audit/entries?limit=1&x=1&x=2").status_code == 200
    api.hub.add_agency("molsa", AgencyKind.welfare)
    with api.client("molsa", attempts=1) as client:
        response = client.get("/v1/cases?offset=0&offset=5")
        _refused(response, "get", "/v1/cases", 400, "repeated_parameter")
    # The caller and its scope come first: a provider is refused for its scope.
    with api.client(api.hub.add_agency("rafidain", AgencyKind.bank), attempts=1) as client:
        _refused(client.get("/v1/cases?limit=1&limit=2"), "get", "/v1/cases", 403, "scope_denied")
    refused = _audit(api, error="repeated_parameter").json()["entries"]
    assert [(e["agency"], e["end_user"]) for e in refused] == [
        ("diwan", "du-abcdefghijklmnop")
    ] * 4 + [("molsa", None)]


def test_a_nul_or_a_lone_surrogate_in_a_json_body_is_a_422_and_is_audited(
    api: InProcessApi,
) -> None:
    """`"\\ud800"` parses as JSON but is no text: it was a 500 that the audit log missed, and
    the writer's batch it was in failed other callers' requests with it (found in review). A
    NUL, `"\\u0000"`, is text no PostgreSQL column holds: a purpose holding one was a 500 from
    the catalogue's query, whose audit entry then failed its batch the same way."""
    api.hub.add_agency("molsa", AgencyKind.welfare)
    json_body = {"content-type": "application/json"}
    token = b'"' + b"a" * 64 + b'"'
    with api.client("molsa", attempts=1) as client:
        for path, body in (
            ("/v1/lookups", b'{"purpose":"\\ud800","tokens":[' + token + b"]}"),
            ("/v1/match-jobs", b'{"purpose":"x\\udfff"}'),
            ("/v1/lookups", b'{"purpose":"eligibility_review\\u0000","tokens":[' + token + b"]}"),
            ("/v1/match-jobs", b'{"purpose":"\\u0000"}'),
        ):
            _refused(
                client.post(path, content=body, headers=json_body),
                "post",
                path,
                422,
                "invalid_request",
            )
        # A pair is text, and so is an escaped backslash before "u0000": not refused for it.
        for version in (b'"\\ud83d\\ude00"', b'"\\\\u0000"'):
            fine = b'{"kind":"roster","key_version":' + version + b',"expected_rows":1}'
            answer = client.post("/v1/uploads", content=fine, headers=json_body)
            assert answer.json()["error"]["code"] == "unknown_key_version"
        # Too deep to parse, whatever it holds: the documented 400, not the gate's 500.
        deep = b"[" * 100_000 + b'"\\ud800"' + b"]" * 100_000
        _refused(
            client.post("/v1/match-jobs", content=deep, headers=json_body),
            "post",
            "/v1/match-jobs",
            400,
            "bad_request",
        )
        assert client.get("/v1/whoami").status_code == 200
    refusals = _audit(api, error="invalid_request", limit=10).json()["entries"]
    routes = sorted(e["entry"]["route"] for e in refusals)
    assert routes == ["/v1/lookups"] * 2 + ["/v1/match-jobs"] * 2
