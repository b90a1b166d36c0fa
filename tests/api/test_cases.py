"""Cases at the broker (issue 15): opened from a match job's result or a lookup's answer, moved
through the state machine by the consumer that opened them, refused with a code at every
illegal step (and nothing changed), with time moved on the app's one clock, never slept
through."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from matchhub.audit.models import AuditEntry
from matchhub.cases import service as cases
from matchhub.jobs.models import match_result_chunks
from matchhub.kit.clock import Clock
from matchhub.protocol.kinds import AgencyKind
from tests.api.test_lookup_view import _view_status
from tests.api.test_queries import (
    FUEL,
    GEN,
    LOAN,
    PENSION,
    PURPOSE,
    World,
    _error,
    _ndjson,
    _wait,
    _world,
)
from tests.conftest import Hub, InProcessApi

STAFF = {"matchhub-end-user": "du-caseworker-0001"}
REASONS = ("not_the_person", "source_outdated", "rule_not_met", "other")
STATES = (
    "indication",
    "verifying",
    "confirmed",
    "refuted",
    "notified",
    "responded",
    "decided",
    "closed",
    "lapsed",
)
# How a case gets to each state: the moves from an indication.
PATH: dict[str, list[tuple[str, str | None]]] = {
    "indication": [],
    "verifying": [("verifying", None)],
    "confirmed": [("verifying", None), ("confirmed", None)],
    "refuted": [("verifying", None), ("refuted", "not_the_person")],
    "notified": [("verifying", None), ("confirmed", None), ("notified", None)],
    "responded": [
        ("verifying", None),
        ("confirmed", None),
        ("notified", None),
        ("responded", None),
    ],
    "decided": [("verifying", None), ("confirmed", None), ("decided", "withdrawn")],
    "closed": [("verifying", None), ("refuted", "other"), ("closed", None)],
}
# The legal moves, written out as the issue states them (not read from the code).
LEGAL = {
    ("indication", "verifying", None),
    ("verifying", "confirmed", None),
    *(("verifying", "refuted", r) for r in REASONS),
    ("confirmed", "notified", None),
    ("confirmed", "decided", "withdrawn"),
    ("refuted", "closed", None),
    ("notified", "responded", None),
    ("notified", "decided", "withdrawn"),
    ("responded", "decided", "upheld"),
    ("responded", "decided", "withdrawn"),
    ("decided", "closed", None),
}
# Every move a client might try: each state, each reason where one belongs, wrong reasons.
ATTEMPTS = [
    *((to, None) for to in STATES),
    *(("refuted", r) for r in REASONS),
    ("decided", "upheld"),
    ("decided", "withdrawn"),
    ("verifying", "other"),
    ("refuted", "upheld"),
    ("decided", "not_the_person"),
    ("closed", "withdrawn"),
]


def _expected_refusal(state: str, to: str, reason: str | None) -> tuple[int, str]:
    wants = {"refuted": REASONS, "decided": ("upheld", "withdrawn")}.get(to)
    if (wants is None and reason is not None) or (wants is not None and reason not in wants):
        return 422, "invalid_reason"
    if state == "closed":
        return 409, "case_closed"
    if state == "lapsed":
        return 409, "case_lapsed"
    if to == "decided" and state in ("indication", "verifying"):
        return 409, "not_verified"
    if (to, reason) == ("decided", "upheld") and state in ("confirmed", "notified"):
        return 409, "response_not_due"
    return 409, "illegal_transition"


def _clock(api: InProcessApi) -> Clock:
    clock = api.app.state.clock
    assert isinstance(clock, Clock)
    return clock


def _job(world: World, client: httpx.Client) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    opened = client.post("/v1/match-jobs", json={"purpose": PURPOSE})
    job = _wait(client, opened.json()["id"])
    lines = _ndjson(client.get(f"/v1/match-jobs/{job['id']}/results"))
    return job["id"], {line["token"]: line["flags"] for line in lines}


class Desk:
    """The consumer's side of a test: its client, a match job's result, the flagged tokens not
    yet taken by a case."""

    def __init__(self, world: World, client: httpx.Client) -> None:
        self.world, self.client = world, client
        self.job, self.results = _job(world, client)
        self.free: Iterator[str] = iter(sorted(self.results))
        self.token_of: dict[str, str] = {}  # case id -> the token it was opened on

    def open(self, token: str | None = None, **extra: Any) -> httpx.Response:
        token = token or next(self.free)
        flags = [f["code"] for f in self.results[token]]
        body = {"job": self.job, "token": token, "flags": flags, **extra}
        response = self.client.post("/v1/cases", json=body, headers=STAFF)
        if response.status_code == 201:
            self.token_of[response.json()["id"]] = token
        return response

    def move(self, case_id: str, to: str, reason: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"to": to}
        if reason is not None:
            body["reason"] = reason
        return self.client.post(f"/v1/cases/{case_id}/transitions", json=body, headers=STAFF)

    def get(self, case_id: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/cases/{case_id}", headers=STAFF)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def case_in(self, state: str) -> str:
        opened = self.open()
        assert opened.status_code == 201, opened.text
        case_id = str(opened.json()["id"])
        for to, reason in PATH[state]:
            moved = self.move(case_id, to, reason)
            assert moved.status_code == 200, moved.text
        assert self.get(case_id)["state"] == state
        return case_id


@pytest.fixture
def desk(api: InProcessApi) -> Iterator[Desk]:
    world = _world(api)
    with world.client("molsa") as client:
        client.headers.update(STAFF)  # the desk names its staff member on every request
        yield Desk(world, client)


def test_every_illegal_move_is_refused_with_its_code_and_changes_nothing(
    api: InProcessApi, desk: Desk
) -> None:
    for state in PATH:
        case_id = desk.case_in(state)
        before = desk.get(case_id)
        for to, reason in ATTEMPTS:
            if (state, to, reason) in LEGAL:
                continue
            refused = desk.move(case_id, to, reason)
            assert _error(refused) == _expected_refusal(state, to, reason), (state, to, reason)
            assert desk.get(case_id) == before, (state, to, reason)
    # Each refusal is in the audit log as one, naming the staff member.
    with api.hub.session() as session:
        bodies = [
            json.loads(b)
            for b in session.scalars(
                select(AuditEntry.body).where(AuditEntry.route == "/v1/cases/{case_id}/transitions")
            )
        ]
    refusals = [b for b in bodies if b["outcome"] == "refused"]
    assert refusals
    assert all(b["end_user"] == STAFF["matchhub-end-user"] for b in refusals)
    assert {b["error"] for b in refusals} == {
        "invalid_reason",
        "case_closed",
        "not_verified",
        "response_not_due",
        "illegal_transition",
    }


def test_every_legal_move_does_what_it_says(api: InProcessApi, desk: Desk) -> None:
    clock = _clock(api)
    for state, to, reason in sorted(LEGAL, key=str):
        case_id = desk.case_in(state)
        moved = desk.move(case_id, to, reason)
        assert moved.status_code == 200, (state, to, reason, moved.text)
        case = moved.json()
        assert case["state"] == to
        assert case["history"] is None
        history = desk.get(case_id)["history"]
        assert (history[-1]["from_state"], history[-1]["to"], history[-1]["reason"]) == (
            state,
            to,
            reason,
        )
        assert history[-1]["end_user"] == STAFF["matchhub-end-user"]
        if to in ("confirmed", "refuted"):
            assert (case["verification"], case["reason"]) == (to, reason)
        if to == "notified":
            due = clock.now() + timedelta(days=30)
            assert abs(_time(case["response_due_at"]) - due) < timedelta(minutes=1)
        if to == "decided":
            assert case["decision"] == reason
    # And the one that waits: an adverse decision once the response period has ended.
    case_id = desk.case_in("notified")
    assert _error(desk.move(case_id, "decided", "upheld")) == (409, "response_not_due")
    clock.advance(timedelta(days=29, hours=23))
    assert _error(desk.move(case_id, "decided", "upheld")) == (409, "response_not_due")
    clock.advance(timedelta(hours=2))
    assert desk.move(case_id, "decided", "upheld").json()["decision"] == "upheld"


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.mark.settings(case_lapse_days=10)
def test_an_indication_lapses_and_may_not_be_acted_on(api: InProcessApi, desk: Desk) -> None:
    clock = _clock(api)
    taken = desk.case_in("indication")
    assert desk.move(taken, "verifying").status_code == 200
    lapsing = desk.case_in("indication")
    clock.advance(timedelta(days=9, hours=23))
    assert desk.get(lapsing)["state"] == "indication"
    clock.advance(timedelta(hours=2))
    before = desk.get(lapsing)
    assert before["state"] == "lapsed"
    for to, reason in ATTEMPTS:
        assert _error(desk.move(lapsing, to, reason)) == _expected_refusal("lapsed", to, reason)
    assert desk.get(lapsing) == before
    # The one taken up in time goes on.
    assert desk.move(taken, "confirmed").status_code == 200
    listed = desk.client.get("/v1/cases", params={"state": "lapsed"}).json()
    assert [c["id"] for c in listed["cases"]] == [lapsing]
    assert desk.client.get("/v1/cases", params={"state": "indication"}).json()["cases"] == []
    # Nor is it opened again from the result it came from: that result is as old, and so is
    # any other person's line in it, or a lookup as old.
    assert _error(desk.open(desk.token_of[lapsing])) == (409, "result_too_old")
    assert _error(desk.open()) == (409, "result_too_old")


@pytest.mark.settings(case_lapse_days=10)
def test_a_lookup_as_old_as_a_lapse_opens_no_case(api: InProcessApi, desk: Desk) -> None:
    token = next(desk.free)
    flags = [f["code"] for f in desk.results[token]]
    answer = desk.client.post("/v1/lookups", json={"purpose": PURPOSE, "tokens": [token]})
    body = {"lookup": answer.json()["reference"], "token": token, "flags": flags}
    _clock(api).advance(timedelta(days=10))
    assert _error(desk.client.post("/v1/cases", json=body)) == (409, "result_too_old")
    _clock(api).advance(timedelta(days=-1))
    assert desk.client.post("/v1/cases", json=body).status_code == 201


def test_from_a_match_job_to_upheld_and_to_withdrawn(api: InProcessApi, desk: Desk) -> None:
    """The whole path twice: one person responds and the decision is upheld; for another the
    ministry withdraws after the response. Each step names the staff member."""
    clock = _clock(api)
    world = desk.world
    loan_only = world.toks[world.ids[0]]  # Rafidain's borrower
    both = world.toks[world.ids[22]]  # a fuel station and a generator
    assert [f["code"] for f in desk.results[loan_only]] == [LOAN]
    opened = desk.open(loan_only)
    assert opened.status_code == 201, opened.text
    upheld = opened.json()
    assert (upheld["state"], upheld["job"], upheld["purpose"]) == ("indication", desk.job, PURPOSE)
    assert upheld["flags"] == desk.results[loan_only]
    assert upheld["opened_by"] == STAFF["matchhub-end-user"]
    withdrawn = desk.client.post(
        "/v1/cases", json={"job": desk.job, "token": both, "flags": [GEN]}, headers=STAFF
    ).json()
    assert [f["code"] for f in withdrawn["flags"]] == [GEN]  # a case on one flag of two
    for case in (upheld, withdrawn):
        for step in ("verifying", "confirmed", "notified"):
            assert desk.move(case["id"], step).status_code == 200
    clock.advance(timedelta(days=12))
    for case in (upheld, withdrawn):
        assert desk.move(case["id"], "responded").status_code == 200
    assert desk.move(upheld["id"], "decided", "upheld").json()["decision"] == "upheld"
    assert desk.move(withdrawn["id"], "decided", "withdrawn").json()["decision"] == "withdrawn"
    for case in (upheld, withdrawn):
        closed = desk.move(case["id"], "closed").json()
        assert closed["state"] == "closed"
        history = desk.get(case["id"])["history"]
        assert [h["to"] for h in history] == [
            "indication",
            "verifying",
            "confirmed",
            "notified",
            "responded",
            "decided",
            "closed",
        ]
        assert _time(history[4]["at"]) - _time(history[3]["at"]) >= timedelta(days=12)
    monitor = api.hub.add_agency("prometheus", AgencyKind.monitor)
    with api.client(monitor) as prometheus:
        metrics = prometheus.get("/metrics").text
    assert 'matchhub_cases{state="closed"} 2.0' in metrics
    # Every step is an audit entry naming the end user, and none holds the token.
    with api.hub.session() as session:
        entries = [
            json.loads(b)
            for b in session.scalars(
                select(AuditEntry.body).where(AuditEntry.route.like("/v1/cases%"))
            )
        ]
    moves = [e for e in entries if e["outcome"] == "accepted" and "from" in e]
    assert len(moves) == 12
    assert all(e["end_user"] == STAFF["matchhub-end-user"] for e in entries)
    assert {(e["case"], e["from"], e["to"]) for e in moves} >= {
        (upheld["id"], "responded", "decided"),
        (withdrawn["id"], "decided", "closed"),
    }
    assert not any(loan_only in json.dumps(e) or both in json.dumps(e) for e in entries)


def test_a_case_from_a_lookup_reference(api: InProcessApi) -> None:
    world = _world(api)
    token = world.toks[world.ids[7]]  # both banks
    other = world.toks[world.ids[16]]  # on the roster, no flag
    with world.client("molsa") as client:
        client.headers.update(STAFF)
        answer = client.post("/v1/lookups", json={"purpose": PURPOSE, "tokens": [token, other]})
        reference = answer.json()["reference"]
        assert isinstance(reference, int)
        opened = client.post(
            "/v1/cases", json={"lookup": reference, "token": token, "flags": [LOAN]}, headers=STAFF
        )
        assert opened.status_code == 201, opened.text
        case = opened.json()
        assert (case["lookup"], case["job"]) == (reference, None)
        assert sorted((f["code"], f["source"]) for f in case["flags"]) == [
            (LOAN, "bank"),
            (LOAN, "bank"),
        ]  # asserted by two banks
        refusals = [
            ({"lookup": reference, "token": other, "flags": [LOAN]}, (422, "not_in_result")),
            ({"lookup": reference, "token": token, "flags": [FUEL]}, (422, "not_in_result")),
            ({"lookup": 0, "token": token, "flags": [LOAN]}, (404, "lookup_not_found")),
            ({"lookup": 10**9, "token": token, "flags": [LOAN]}, (404, "lookup_not_found")),
        ]
        for body, expected in refusals:
            assert _error(client.post("/v1/cases", json=body)) == expected, body
        # The flag's source has since dropped it: the lookup said so, but a case is not opened
        # on what no current snapshot asserts.
        dropped = world.toks[world.ids[2]]  # Rafidain's only
        again = client.post("/v1/lookups", json={"purpose": PURPOSE, "tokens": [dropped]})
        world.push("rafidain", [LOAN], {i: [LOAN] for i in world.ids[5:10]})
        stale = client.post(
            "/v1/cases",
            json={"lookup": again.json()["reference"], "token": dropped, "flags": [LOAN]},
        )
        assert _error(stale) == (409, "flag_no_longer_current")
        assert [c["id"] for c in client.get("/v1/cases").json()["cases"]] == [case["id"]]


@pytest.mark.settings(lookup_rate_per_second=1000)
def test_opening_is_refused_unless_the_result_said_so(api: InProcessApi, desk: Desk) -> None:
    world = desk.world
    other = api.hub.add_agency("kurdistan-welfare", AgencyKind.welfare)
    flagged = world.toks[world.ids[0]]
    unflagged = world.toks[world.ids[16]]
    off_roster = world.toks[world.ids[47]]  # the pension authority holds it; not on the roster
    job = desk.job
    refusals: list[tuple[dict[str, Any], tuple[int, str]]] = [
        ({"job": job, "token": unflagged, "flags": [LOAN]}, (422, "not_in_result")),
        ({"job": job, "token": off_roster, "flags": [PENSION]}, (422, "not_in_result")),
        ({"job": job, "token": flagged, "flags": [LOAN, FUEL]}, (422, "not_in_result")),
        ({"job": "0" * 32, "token": flagged, "flags": [LOAN]}, (404, "job_not_found")),
        ({"token": flagged, "flags": [LOAN]}, (422, "invalid_case_origin")),
        (
            {"job": job, "lookup": 1, "token": flagged, "flags": [LOAN]},
            (422, "invalid_case_origin"),
        ),
        ({"job": job, "token": flagged.upper(), "flags": [LOAN]}, (422, "invalid_token")),
        ({"job": job, "token": "198012345678", "flags": [LOAN]}, (422, "raw_identifier_refused")),
        ({"job": "not-a-job", "token": flagged, "flags": [LOAN]}, (422, "invalid_request")),
        ({"job": job, "token": flagged, "flags": []}, (422, "invalid_request")),
        ({"job": job, "token": flagged, "flags": ["Not A Flag"]}, (422, "invalid_request")),
        ({"job": job, "token": flagged, "flags": [LOAN], "name": "x"}, (422, "invalid_request")),
        ({"job": job, "lookup": -1, "token": flagged, "flags": [LOAN]}, (422, "invalid_request")),
        ({"lookup": 10**30, "token": flagged, "flags": [LOAN]}, (422, "invalid_request")),
        ({"lookup": "1", "token": flagged, "flags": [LOAN]}, (422, "invalid_request")),
        ({"lookup": True, "token": flagged, "flags": [LOAN]}, (422, "invalid_request")),
        ({"lookup": 2**63 - 1, "token": flagged, "flags": [LOAN]}, (404, "lookup_not_found")),
        ({"job": job, "token": "a" * 10_000, "flags": [LOAN]}, (422, "invalid_request")),
    ]
    for body, expected in refusals:
        refused = desk.client.post("/v1/cases", json=body, headers=STAFF)
        assert _error(refused) == expected, body
        assert "198012345678" not in refused.text
    with api.client(other) as theirs_client:
        body = {"job": job, "token": flagged, "flags": [LOAN]}
        theirs = theirs_client.post("/v1/cases", json=body, headers=STAFF)
        assert _error(theirs) == (404, "job_not_found")
    assert desk.client.get("/v1/cases").json()["cases"] == []
    first = desk.open(flagged)
    assert first.status_code == 201
    again = desk.open(flagged)
    assert _error(again) == (409, "case_exists")
    assert again.json()["error"]["details"] == {"case": first.json()["id"]}


def test_only_the_consumer_that_opened_a_case_sees_or_moves_it(
    api: InProcessApi, desk: Desk
) -> None:
    world = desk.world
    case_id = desk.case_in("verifying")
    before = desk.get(case_id)
    other = api.hub.add_agency("kurdistan-welfare", AgencyKind.welfare)
    with api.client(other) as theirs:
        theirs.headers.update(STAFF)
        assert _error(theirs.get(f"/v1/cases/{case_id}")) == (404, "case_not_found")
        moved = theirs.post(f"/v1/cases/{case_id}/transitions", json={"to": "confirmed"})
        assert _error(moved) == (404, "case_not_found")
        assert theirs.get("/v1/cases").json() == {"cases": [], "next_offset": None}
        assert theirs.get("/v1/feedback").json()["per_flag"] == []
    for code in ("rafidain", "auditor"):
        with world.client(code) as client:
            assert _error(client.get(f"/v1/cases/{case_id}")) == (403, "scope_denied")
            assert _error(client.get("/v1/cases")) == (403, "scope_denied")
    with world.client("auditor") as client:
        assert _error(client.get("/v1/feedback")) == (403, "scope_denied")
    assert desk.get(case_id) == before


def test_bad_requests_about_cases_are_refused(desk: Desk) -> None:
    case_id = desk.case_in("verifying")
    before = desk.get(case_id)
    post = desk.client.post
    bad: list[tuple[httpx.Response, tuple[int, str]]] = [
        (
            post("/v1/cases/NOT-AN-ID/transitions", json={"to": "confirmed"}),
            (422, "invalid_request"),
        ),
        (
            post(f"/v1/cases/{'0' * 32}/transitions", json={"to": "confirmed"}),
            (404, "case_not_found"),
        ),
        (
            post(f"/v1/cases/{case_id}/transitions", json={"to": "approved"}),
            (422, "invalid_request"),
        ),
        (post(f"/v1/cases/{case_id}/transitions", json={}), (422, "invalid_request")),
        (
            post(f"/v1/cases/{case_id}/transitions", json={"to": "refuted", "reason": "x" * 40}),
            (422, "invalid_request"),
        ),
        (
            post(f"/v1/cases/{case_id}/transitions", json={"to": "confirmed", "note": "Ali"}),
            (422, "invalid_request"),
        ),
        (post(f"/v1/cases/{case_id}/transitions", content=b"{"), (422, "invalid_request")),
        (desk.client.get("/v1/cases/xyz"), (422, "invalid_request")),
        (desk.client.get("/v1/cases", params={"state": "pending"}), (422, "invalid_request")),
        (desk.client.get("/v1/cases", params={"due_before": "soon"}), (422, "invalid_request")),
        (
            desk.client.get("/v1/cases", params={"due_after": "2026-12-07T00:00:00"}),
            (422, "invalid_request"),
        ),  # no zone: which midnight?
        (desk.client.get("/v1/cases", params={"offset": 10**12}), (422, "invalid_request")),
        (desk.client.get("/v1/cases", params={"limit": 0}), (422, "invalid_request")),
    ]
    with desk.world.client("molsa") as unnamed:
        bad += [
            (
                unnamed.post(f"/v1/cases/{case_id}/transitions", json={"to": "confirmed"}),
                (422, "end_user_required"),
            ),
            (
                unnamed.post(
                    "/v1/cases", json={"job": desk.job, "token": next(desk.free), "flags": [LOAN]}
                ),
                (422, "end_user_required"),
            ),
        ]
    for response, expected in bad:
        assert _error(response) == expected, response.request.url
    assert desk.get(case_id) == before


def test_the_list_filters_by_state_and_due_date_a_page_at_a_time(
    api: InProcessApi, desk: Desk
) -> None:
    clock = _clock(api)
    with api.hub.session() as session:
        cases.set_notice_days(session, PURPOSE, 14)
    early = desk.case_in("notified")
    clock.advance(timedelta(days=3))
    late = desk.case_in("notified")
    verifying = [desk.case_in("verifying") for _ in range(3)]
    assert desk.get(early)["notice_days"] == 14
    due_early = _time(desk.get(early)["response_due_at"])
    listed = desk.client.get("/v1/cases", params={"state": "notified"}).json()
    assert [c["id"] for c in listed["cases"]] == [early, late]
    cut = (due_early + timedelta(days=1)).isoformat()
    assert [
        c["id"] for c in desk.client.get("/v1/cases", params={"due_before": cut}).json()["cases"]
    ] == [early]
    assert [
        c["id"] for c in desk.client.get("/v1/cases", params={"due_after": cut}).json()["cases"]
    ] == [late]
    pension = next(t for t in desk.free if PENSION in {f["code"] for f in desk.results[t]})
    on_pension = desk.open(pension).json()["id"]
    by_flag = desk.client.get("/v1/cases", params={"flag": PENSION}).json()["cases"]
    everything = desk.client.get("/v1/cases").json()["cases"]
    assert on_pension in [c["id"] for c in by_flag]
    assert [c["id"] for c in by_flag] == [
        c["id"] for c in everything if PENSION in {f["code"] for f in c["flags"]}
    ]
    assert len(by_flag) < len(everything)
    assert _error(desk.client.get("/v1/cases", params={"flag": "No Flag"})) == (
        422,
        "invalid_request",
    )
    pages, offset = [], 0
    while offset is not None:
        page = desk.client.get(
            "/v1/cases", params={"state": "verifying", "limit": 2, "offset": offset}
        ).json()
        pages.append([c["id"] for c in page["cases"]])
        offset = page["next_offset"]
    assert pages == [verifying[:2], verifying[2:]]


def test_feedback_counts_per_provider_with_small_cells_suppressed(
    api: InProcessApi, desk: Desk
) -> None:
    """Rafidain's flag (ids 0-9) is confirmed ten times: shown. Ashur's (ids 5-14) five times
    confirmed and five refuted as not the person: below the threshold of 10, never shown. The
    ministry sees its confirmation rate per flag and per source, counting a flag two banks
    assert once."""
    world = desk.world
    for raw in world.ids[0:15]:
        case_id = str(desk.open(world.toks[raw]).json()["id"])
        desk.move(case_id, "verifying")
        if raw in world.ids[0:10]:
            assert desk.move(case_id, "confirmed").status_code == 200
        else:
            assert desk.move(case_id, "refuted", "not_the_person").status_code == 200
    fuel = desk.client.post(
        "/v1/cases", json={"job": desk.job, "token": world.toks[world.ids[20]], "flags": [FUEL]}
    ).json()["id"]
    desk.move(fuel, "verifying")
    desk.move(fuel, "refuted", "rule_not_met")
    month = _clock(api).now().strftime("%Y-%m")

    def cells(code: str) -> dict[tuple[str, str, str | None], tuple[int | None, bool]]:
        with world.client(code) as client:
            answer = client.get("/v1/feedback").json()
        assert (answer["role"], answer["threshold"]) == ("provider", 10)
        assert answer["per_flag"] is None
        return {
            (c["month"], c["outcome"], c["reason"]): (c["count"], c["suppressed"])
            for c in answer["cells"]
            if c["flag"] == LOAN
        }

    hidden = (None, True)
    assert cells("rafidain") == {
        (month, "confirmed", None): (10, False),
        **{(month, "refuted", r): hidden for r in REASONS},
    }
    assert cells("ashur") == {
        (month, "confirmed", None): hidden,
        **{(month, "refuted", r): hidden for r in REASONS},
    }
    assert cells("pension") == {}
    # A month later, a generator owner confirmed: the trade ministry's cells are per month.
    _clock(api).advance(timedelta(days=32))
    later = _clock(api).now().strftime("%Y-%m")
    generator = desk.client.post(
        "/v1/cases", json={"job": desk.job, "token": world.toks[world.ids[26]], "flags": [GEN]}
    ).json()["id"]
    desk.move(generator, "verifying")
    desk.move(generator, "confirmed")
    with world.client("trade") as client:
        trade = client.get("/v1/feedback").json()["cells"]
    assert [(c["month"], c["flag"], c["outcome"]) for c in trade] == [
        (month, FUEL, "confirmed"),
        *((month, FUEL, "refuted") for _ in REASONS),
        (later, GEN, "confirmed"),
        *((later, GEN, "refuted") for _ in REASONS),
    ]
    assert {(c["count"], c["suppressed"]) for c in trade} == {(None, True)}
    mine = desk.client.get("/v1/feedback").json()
    assert mine["role"] == "consumer"
    assert mine["cells"] is None
    assert mine["per_flag"] == [
        {
            "key": LOAN,
            "confirmed": 10,
            "refuted": 5,
            "refuted_by_reason": {"not_the_person": 5},
            "rate": 0.6667,
        },
        {
            "key": FUEL,
            "confirmed": 0,
            "refuted": 1,
            "refuted_by_reason": {"rule_not_met": 1},
            "rate": 0.0,
        },
        {"key": GEN, "confirmed": 1, "refuted": 0, "refuted_by_reason": {}, "rate": 1.0},
    ]
    assert [(s["key"], s["confirmed"], s["refuted"]) for s in mine["per_source"]] == [
        ("bank", 10, 5),
        ("trade", 1, 1),
    ]


def test_two_moves_of_one_case_at_once_never_both_pass(api: InProcessApi, desk: Desk) -> None:
    """Eight staff confirm or refute the same case at once: the case's row lock lets exactly
    one through; the others find it already verified (409) and change nothing."""
    case_id = desk.case_in("verifying")
    answers: list[tuple[int, str]] = []

    def one(n: int) -> None:
        with desk.world.client("molsa") as client:
            client.headers.update(STAFF)
            move = {"to": "confirmed"} if n % 2 else {"to": "refuted", "reason": "other"}
            response = client.post(f"/v1/cases/{case_id}/transitions", json=move)
            code = "" if response.status_code == 200 else response.json()["error"]["code"]
            answers.append((response.status_code, code))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(answers) == [(200, ""), *[(409, "illegal_transition")] * 7]
    history = desk.get(case_id)["history"]
    assert [h["to"] for h in history][1:] in (["verifying", "confirmed"], ["verifying", "refuted"])


@pytest.mark.parametrize("view_rows", [100_000_000, 0], ids=["view", "sql"])
def test_a_lookup_answer_names_its_audit_entry(
    hub: Hub, view_rows: int, request: pytest.FixtureRequest
) -> None:
    """Answered from the in-memory view or from SQL, a lookup's `reference` is the seq of its
    own entry, which keeps a keyed digest of each flag answered and never the token."""
    hub.settings = hub.settings.model_copy(update={"lookup_view_max_rows": view_rows})
    api = request.getfixturevalue("api")
    world = _world(api)
    asked = [world.toks[i] for i in (world.ids[7], world.ids[22], world.ids[16])]
    with world.client("molsa") as client:
        answer = client.post("/v1/lookups", json={"purpose": PURPOSE, "tokens": asked}).json()
    answered = sum(len(r["flags"]) for r in answer["results"])
    assert answered == 3  # a loan (two banks, one answer); a fuel station and a generator
    assert (_view_status(world)["state"] == "off") == (view_rows == 0)
    with api.hub.session() as session:
        entry = session.get(AuditEntry, answer["reference"])
        assert entry is not None
        body = json.loads(entry.body)
    assert (body["route"], body["agency"]) == ("/v1/lookups", "molsa")
    assert len(body["flagged"]) == 3  # one digest per (token, flag) answered
    assert not any(token in entry.body for token in asked)


def test_opening_finds_a_person_in_any_chunk_of_a_result(
    api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results in chunks of four flagged beneficiaries: a case opens on each flagged roster
    member, whichever chunk holds them, and on no one else."""
    monkeypatch.setattr("matchhub.jobs.repository.RESULT_CHUNK_ROWS", 4)
    world = _world(api)
    with world.client("molsa") as client:
        client.headers.update(STAFF)
        job_id, results = _job(world, client)
        assert len(results) == 30
        with api.hub.session() as session:
            chunks = session.scalar(
                select(func.count()).where(match_result_chunks.c.job_id == job_id)
            )
        assert chunks == 8
        for raw in world.roster:
            token = world.toks[raw]
            flags = [f["code"] for f in results.get(token, [])] or [LOAN]
            opened = client.post("/v1/cases", json={"job": job_id, "token": token, "flags": flags})
            if token in results:
                assert opened.status_code == 201, (raw, opened.text)
            else:
                assert _error(opened) == (422, "not_in_result")
