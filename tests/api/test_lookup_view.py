"""Lookups answered from the in-memory view (lookups/inmemory.py), on SQLite and PostgreSQL:
the same answers as the database gives, and no answer from a view the hub has moved past,
however stale the view is allowed to get."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select, update

from matchhub.catalogue import service as catalogue
from matchhub.identity import service as identity
from matchhub.identity.models import Agency
from matchhub.kit.db import make_engine
from matchhub.lookups import endpoints
from matchhub.lookups.models import ViewGeneration
from matchhub.protocol.kinds import AgencyKind
from tests.api.test_queries import LOAN, PURPOSE, World, _flags, _lookup, _world
from tests.conftest import Hub, InProcessApi
from tests.e2e.helpers import lookup_view_state


def _last_lookup_entry(world: World) -> dict[str, Any]:
    with world.client("auditor") as client:
        response = client.get("/v1/audit/entries", params={"route": "/v1/lookups", "limit": 1000})
    assert response.status_code == 200, response.text
    entries = [e["entry"] for e in response.json()["entries"]]
    return entries[-1]


def _answered_from_view(world: World, raws: list[str], timeout: float = 20.0) -> dict[str, Any]:
    """Look up until the answer comes from the view (its audit entry names the generation)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = _lookup(world, raws)
        if _last_lookup_entry(world)["view_generation"] is not None:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError("no lookup was answered from the view")
        time.sleep(0.1)


def _generation(hub: Hub) -> int:
    with hub.session() as session:
        return int(session.scalar(select(ViewGeneration.generation)))


def _with_monitor(world: World) -> World:
    """The world with a monitor agency registered (a registration moves the view's
    generation, so a test registers it before it waits for the view)."""
    world.creds["prometheus"] = world.broker.hub.add_agency("prometheus", AgencyKind.monitor)
    return world


def _view_status(world: World) -> dict[str, Any]:
    """The view's state, as the monitor reads it on /metrics (it is no longer on /readyz,
    which any certificate may ask)."""
    if "prometheus" not in world.creds:
        _with_monitor(world)
    with world.client("prometheus") as client:
        return {"state": lookup_view_state(client)}


def _assert_truth(world: World, answer: dict[str, Any]) -> None:
    for raw in world.ids:
        on = raw in world.roster
        assert answer[raw]["on_roster"] is on
        # Exactly what the providers hold, for roster members only: the ground truth.
        assert _flags(answer[raw]) == (world.truth[raw] if on else set())


def test_answers_from_the_view_are_the_databases(api: InProcessApi) -> None:
    world = _with_monitor(_world(api))
    _assert_truth(world, _answered_from_view(world, world.ids))
    # Only the state: sizes and generations would tell any caller about other agencies.
    assert _view_status(world) == {"state": "current"}


def test_a_lookup_from_the_view_authenticates_its_caller_once(
    api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The gate finds the caller in the view; the route takes that principal rather than
    # authenticate the same certificate in the same view again.
    world = _with_monitor(_world(api))
    _answered_from_view(world, world.ids[:3])
    calls: list[str] = []
    real = identity.authenticate_with

    def counted(*args: Any, **kwargs: Any) -> Any:
        principal = real(*args, **kwargs)
        calls.append(principal.code)
        return principal

    monkeypatch.setattr(identity, "authenticate_with", counted)
    _assert_truth(world, _answered_from_view(world, world.ids))
    assert calls[0] == "molsa"
    assert calls.count("molsa") == 1


@pytest.mark.parametrize(
    "state",
    [
        pytest.param("off", marks=pytest.mark.settings(lookup_view_max_rows=0)),
        pytest.param("too_large", marks=pytest.mark.settings(lookup_view_max_rows=20)),
    ],
)
def test_without_a_view_lookups_read_the_database(api: InProcessApi, state: str) -> None:
    world = _world(api)
    _assert_truth(world, _lookup(world, world.ids))
    assert _last_lookup_entry(world)["view_generation"] is None
    deadline = time.monotonic() + 10
    while _view_status(world)["state"] != state:
        assert time.monotonic() < deadline, _view_status(world)
        time.sleep(0.1)


@pytest.mark.settings(lookup_view_poll_seconds=3600)
def test_no_answer_leaves_from_a_view_the_hub_has_moved_past(api: InProcessApi) -> None:
    """The view never polls here: only the audit writer's check at commit stands between a
    stale view and the caller."""
    world = _world(api)
    paid_off = world.ids[0]  # a loan only rafidain held
    assert _flags(_answered_from_view(world, [paid_off])[paid_off]) == {(LOAN, "bank")}
    generation = _generation(api.hub)

    world.push("rafidain", [LOAN], {i: [LOAN] for i in world.ids[1:10]})  # replaces it
    assert _generation(api.hub) > generation
    after = _lookup(world, [paid_off])
    assert _flags(after[paid_off]) == set()
    assert _last_lookup_entry(world)["view_generation"] is None  # answered again from SQL
    # The refused answer told the view to catch up: the next ones come from it again, right.
    assert _flags(_answered_from_view(world, [paid_off])[paid_off]) == set()

    with api.hub.session() as session:
        catalogue.revoke_grant(session, "kind:welfare", LOAN, PURPOSE)
    assert _flags(_lookup(world, [world.ids[5]])[world.ids[5]]) == set()  # ashur's, now hidden

    with world.client("molsa") as client:  # one client, open across the revocation
        ok = client.post("/v1/lookups", json={"purpose": PURPOSE, "tokens": []})
        assert ok.status_code == 200
        _answered_from_view(world, [world.ids[5]])
        api.hub.revoke("molsa")
        refused = client.post(
            "/v1/lookups", json={"purpose": PURPOSE, "tokens": [world.toks[world.ids[5]]]}
        )
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "certificate_revoked"


def test_the_generation_moves_with_every_change_a_lookup_reads(api: InProcessApi) -> None:
    hub = api.hub
    world = _world(api)
    moves = []

    def moved(action: Any) -> bool:
        before = _generation(hub)
        action()
        after = _generation(hub)
        moves.append(after > before)
        return after > before

    def grant() -> None:
        with hub.session() as session:
            catalogue.add_grant(session, "agency:molsa", LOAN, "recertification")

    assert moved(grant)
    assert moved(lambda: hub.add_agency("zain", "bank"))
    assert moved(lambda: hub.revoke("zain"))
    with world.client("rafidain") as client:
        opened = client.post(
            "/v1/uploads",
            json={
                "kind": "flags",
                "key_version": world.key.version,
                "flags": [LOAN],
                "expected_rows": 1,
            },
        )
        assert opened.status_code == 201, opened.text
        upload = opened.json()["id"]
        line = b'{"token": "%s", "flags": ["%s"]}\n' % (
            world.toks[world.ids[3]].encode(),
            LOAN.encode(),
        )
        # Chunks arriving change nothing a lookup reads.
        assert not moved(
            lambda: client.put(
                f"/v1/uploads/{upload}/chunks/0",
                content=line,
                headers={"content-type": "application/x-ndjson"},
            ).raise_for_status()
        )
        client.delete(f"/v1/uploads/{upload}").raise_for_status()

    # A commit does (it replaces the provider's snapshot).
    assert moved(lambda: world.push("rafidain", [LOAN], {world.ids[2]: [LOAN]}))
    assert moves == [True, True, True, False, True]


@pytest.mark.settings(lookup_view_poll_seconds=3600)
def test_a_change_in_flight_is_either_wholly_before_an_answer_or_after_it(
    api: InProcessApi,
) -> None:
    """A change that has bumped the generation but not yet committed: the audit writer's read
    of the generation waits for it (FOR SHARE on PostgreSQL; SQLite's write lock), so the
    answer from the older view is refused once the change commits, not sent before it."""
    world = _world(api)
    raw = world.ids[6]
    _answered_from_view(world, [raw])
    engine = make_engine(api.hub.settings.sqlalchemy_url)
    answers: list[dict[str, Any]] = []
    try:
        with engine.connect() as change:
            change.execute(update(Agency).where(Agency.code == "ashur").values(name="Ashur Bank"))
            asking = threading.Thread(target=lambda: answers.append(_lookup(world, [raw])))
            asking.start()
            asking.join(timeout=1.5)
            assert asking.is_alive()  # its answer waits for the change to end
            change.commit()
        asking.join(timeout=30)
    finally:
        engine.dispose()
    assert _flags(answers[0][raw]) == world.truth[raw]
    assert _last_lookup_entry(world)["view_generation"] is None  # refused, answered from SQL


def test_the_lookup_shortcut_answers_as_the_documented_route(
    api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The route answers its plain requests without FastAPI's handler (lookups/endpoints.py);
    # every request, plain or not, must get what the handler alone would give, and be recorded
    # the same way.
    world = _with_monitor(_world(api))
    _answered_from_view(world, world.ids[:3])
    tokens = [world.toks[i] for i in world.ids[:12]]
    plain = json.dumps({"purpose": PURPOSE, "tokens": tokens}).encode()
    # Body, content type, and whether the shortcut takes it to the endpoint (which may refuse
    # it, as it would from FastAPI's handler).
    cases: list[tuple[bytes, str, bool]] = [
        (plain, "application/json", True),
        (
            json.dumps(
                {"purpose": PURPOSE, "tokens": tokens, "key_version": world.key.version}
            ).encode(),
            "application/json",
            True,
        ),
        # The last of a repeated key, as json.loads reads it.
        (
            b'{"purpose":"x","purpose":"'
            + PURPOSE.encode()
            + b'","tokens":'
            + json.dumps(tokens).encode()
            + b"}",
            "application/json",
            True,
        ),
        (plain, "application/json; charset=utf-8", False),
        (plain.decode().encode("utf-16"), "application/json", False),
        (
            json.dumps({"purpose": PURPOSE, "tokens": tokens, "key_version": "v9"}).encode(),
            "application/json",
            True,
        ),
        (json.dumps({"purpose": PURPOSE, "tokenz": tokens}).encode(), "application/json", False),
        (
            json.dumps({"purpose": PURPOSE, "tokens": ["00" * 16]}).encode(),
            "application/json",
            True,
        ),
        (json.dumps({"tokens": tokens}).encode(), "application/json", True),
        (b'{"purpose": NaN, "tokens": []}', "application/json", False),
        (b"[]", "application/json", False),
        (b"{", "application/json", False),
        (plain, "text/plain", False),
    ]
    real = endpoints._shortcut
    taken: list[bool] = []

    async def watched(request: Any) -> Any:
        try:
            response = await real(request)
        except Exception:  # the endpoint's own refusal, from the shortcut
            taken.append(True)
            raise
        taken.append(response is not None)
        return response

    async def never(request: Any) -> None:
        return None

    def answer(body: bytes, content_type: str) -> tuple[int, Any, dict[str, Any]]:
        with world.client("molsa") as client:
            response = client.post(
                "/v1/lookups", content=body, headers={"content-type": content_type}
            )
        document = response.json()
        if isinstance(document, dict):
            document.pop("reference", None)
        entry = {k: v for k, v in _last_lookup_entry(world).items() if k not in ("seq", "time")}
        return response.status_code, document, entry

    for body, content_type, is_plain in cases:
        taken.clear()
        monkeypatch.setattr(endpoints, "_shortcut", watched)
        with_shortcut = answer(body, content_type)
        assert taken == [is_plain], (body[:60], content_type, with_shortcut)
        monkeypatch.setattr(endpoints, "_shortcut", never)
        assert answer(body, content_type) == with_shortcut, (body[:60], content_type)
