"""No answer leaves from a lookup view the hub has moved past, whatever the route: shown with
throwaway routes that authenticate from the view and do nothing to protect themselves.

The view's own polling is switched off (``lookup_view_poll_seconds``), so the only thing
standing between a stale view and an answer is the audit writer's generation check."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import Request
from sqlalchemy import select

from matchhub.audit.models import AuditEntry
from matchhub.identity.auth import LookupCaller, viewed
from matchhub.kit.requests import ReadOnly
from matchhub.lookups.keeper import ViewKeeper
from matchhub.protocol.kinds import AgencyKind
from tests.conftest import Hub, InProcessApi

pytestmark = pytest.mark.settings(lookup_view_poll_seconds=3600)


def _throwaway_routes(api: InProcessApi) -> None:
    """Two routes a careless engineer might add: one that reads the view, one that writes."""

    @api.app.get("/v1/test-only/echo", dependencies=[ReadOnly])
    async def echo(principal: LookupCaller, request: Request) -> dict[str, Any]:
        return {"agency": principal.code, "from_view": viewed(request) is not None}

    @api.app.post("/v1/test-only/echo")
    async def echo_writes(principal: LookupCaller, request: Request) -> dict[str, Any]:
        return {"agency": principal.code, "from_view": viewed(request) is not None}


def _until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true")
        time.sleep(0.02)


def _entries(hub: Hub) -> list[dict[str, Any]]:
    with hub.session() as session:
        bodies = session.scalars(
            select(AuditEntry.body)
            .where(AuditEntry.route == "/v1/test-only/echo")
            .order_by(AuditEntry.seq)
        ).all()
    return [json.loads(b) for b in bodies]


def test_a_stale_view_never_answers_on_any_route(api: InProcessApi) -> None:
    _throwaway_routes(api)
    api.hub.add_agency("molsa", AgencyKind.welfare)
    views: ViewKeeper = api.app.state.lookup_views
    views.check_soon()
    _until(lambda: views.current() is not None and views.current().credential is not None)
    with api.client("molsa", attempts=1) as client:
        _until(lambda: client.get("/v1/test-only/echo").json().get("from_view") is True)
        # From here on the keeper loads nothing (a reload asked for while it was loading could
        # otherwise catch the change below): only the commit-time check stands in the way.
        views.stop()
        # The hub changes; the view does not know.
        api.hub.add_agency("auditor", AgencyKind.auditor)
        stale = client.get("/v1/test-only/echo")
        assert (stale.status_code, stale.json()["error"]["code"]) == (503, "view_outdated")
        # The writer told the keeper: it serves that view no more, and the caller is answered
        # from the database.
        assert views.current() is None
        assert client.get("/v1/test-only/echo").json() == {"agency": "molsa", "from_view": False}
        # A route that writes never authenticates from the view.
        assert client.post("/v1/test-only/echo").json() == {"agency": "molsa", "from_view": False}
    recorded = [(e["method"], e["status"], e["error"]) for e in _entries(api.hub)]
    # The 503 is recorded as what was sent; no 200 was recorded for the stale request.
    assert ("GET", 503, "view_outdated") in recorded
    assert recorded[-1] == ("POST", 200, None)


@pytest.mark.settings(audit_enabled=False)
def test_with_the_log_off_a_stale_view_still_never_answers(api: InProcessApi) -> None:
    """With no audit commit to ride on, the generation is read from the database."""
    _throwaway_routes(api)
    api.hub.add_agency("molsa", AgencyKind.welfare)
    views: ViewKeeper = api.app.state.lookup_views
    views.check_soon()
    with api.client("molsa", attempts=1) as client:
        _until(lambda: client.get("/v1/test-only/echo").json().get("from_view") is True)
        views.stop()  # no reload from here on (see above)
        api.hub.add_agency("auditor", AgencyKind.auditor)
        stale: httpx.Response = client.get("/v1/test-only/echo")
        assert (stale.status_code, stale.json()["error"]["code"]) == (503, "view_outdated")
