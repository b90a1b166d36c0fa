"""Authorisation as typed dependencies.

A route states the one scope it needs by taking a parameter of type
``Annotated[Principal, Depends(require(Scope.X))]``. The dependency authenticates the caller
(certificate → registry) and checks the scope, so a route cannot forget either, and
:func:`route_scope` lets a test list every route with its scope.

:func:`require_viewed` authenticates from the lookups' in-memory view instead, on read-only
routes only: their audit entries go through the group-commit writer, which commits an entry of
a caller authenticated from a view only while the view's generation is the database's
(web/recorder.py). A route that writes records its entry in its own transaction, where nothing
checks the generation, so there the dependency reads the database like :func:`require`.

The acting staff member. A consumer's or an auditor's desk names the person it acts for in the
``Matchhub-End-User`` header: a pseudonymous id the desk gives each of its users (random, stable
per user, never a name), as X-Road's ``userId``. It is read here, where the principal is made,
so every route and every audit entry sees the same value: :func:`end_user` checks who may send
it (consumers and auditors: a provider's connector acts for no one) and its shape, and the
principal carries it into the request's audit entry.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Annotated, Any, Protocol, cast

from fastapi import Depends, Header, Request
from fastapi.dependencies.models import Dependant
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from matchhub.identity import service
from matchhub.identity.peer import client_certificate
from matchhub.identity.repository import Credential
from matchhub.identity.schemas import Principal
from matchhub.identity.scopes import Scope
from matchhub.kit.errors import Forbidden, Unauthenticated, UnprocessableEntity
from matchhub.kit.requests import (
    SessionDep,
    SettingsDep,
    is_read_only,
    read_session,
    settings_of,
)
from matchhub.kit.settings import Settings
from matchhub.protocol.kinds import AgencyKind
from matchhub.protocol.tokens import looks_like_raw_identifier

SCOPE_ATTRIBUTE = "__matchhub_scope__"
VIEWED_ATTRIBUTE = "__matchhub_viewed__"  # marks require_viewed's dependencies
VIEW_ATTRIBUTE = "lookup_view"  # request.state: the view the caller was authenticated from
GATE_VIEW = "gate_view"  # request.state: the view the gate found its ``principal`` in (web/gate.py)

END_USER_HEADER = "matchhub-end-user"
END_USER_KINDS = frozenset({AgencyKind.welfare, AgencyKind.auditor})
END_USER_PATTERN = re.compile(r"[a-z0-9][a-z0-9._:-]{7,63}", re.ASCII)
"""8 to 64 characters of lowercase ASCII letters, digits and ``. _ : -``: room for a random id
(the desk's are ``du-`` and 26 base32 letters), none for an Arabic name or a sentence."""


class CredentialView(Protocol):
    """An in-memory registry at a known generation (the lookups' view, lookups/inmemory.py)."""

    generation: int

    def credential(self, fingerprint: str) -> Credential | None: ...


class CredentialViews(Protocol):
    def current(self) -> CredentialView | None: ...

    def check_soon(self) -> None: ...


def authenticate_request(
    request: Request, session: Session, settings: Settings, scope: Scope
) -> Principal:
    """The caller, from the database registry, holding ``scope``. Whatever view the request
    was authenticated from before, its answer now depends on the database."""
    setattr(request.state, VIEW_ATTRIBUTE, None)
    principal = service.authenticate(
        session, client_certificate(request, settings), settings.hub_name
    )
    return _admit(request, principal, scope)


def end_user(request: HTTPConnection, principal: Principal) -> str | None:
    """The ``Matchhub-End-User`` the caller named, checked; None when it named no one.

    A provider may not send it (403 ``end_user_not_allowed``); a malformed one, or one that
    looks like a national ID, is 422 ``invalid_end_user``. The refused value is never echoed
    nor recorded: it might be a name."""
    values = request.headers.getlist(END_USER_HEADER)
    if not values:
        return None
    if principal.kind not in END_USER_KINDS:
        raise Forbidden(
            f"agencies of kind {principal.kind.value!r} act for no end user; only consumer and "
            "auditor agencies may send Matchhub-End-User",
            code="end_user_not_allowed",
        )
    value = values[0]
    if len(values) > 1 or not END_USER_PATTERN.fullmatch(value) or looks_like_raw_identifier(value):
        raise UnprocessableEntity(
            "Matchhub-End-User must be one pseudonymous id: 8 to 64 characters of lowercase "
            "letters, digits and . _ : - (never a name or an ID number)",
            code="invalid_end_user",
        )
    return value


END_USER_DESCRIPTION = (
    "Consumer and auditor agencies' desks: the acting staff member's pseudonymous id (8-64 of "
    "a-z 0-9 . _ : -, never a name), recorded in the audit entry. A provider sending it gets 403 "
    "end_user_not_allowed; a malformed one 422 invalid_end_user."
)

EndUserHeader = Annotated[
    str | None, Header(alias="Matchhub-End-User", description=END_USER_DESCRIPTION)
]
"""Declared so the OpenAPI document shows it on every route; read by :func:`end_user`."""

END_USER_PARAMETER: dict[str, Any] = {
    "name": "Matchhub-End-User",
    "in": "header",
    "required": False,
    "description": END_USER_DESCRIPTION,
    "schema": {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "title": "Matchhub-End-User",
        "description": END_USER_DESCRIPTION,
    },
}
""":data:`EndUserHeader` as the OpenAPI document shows it, for a route that takes
:func:`require_viewed`'s principal: that dependency reads the header itself (:func:`end_user`)
rather than declare it, so FastAPI does not parse it a second time on the hot route; the route
shows it with ``openapi_extra={"parameters": [END_USER_PARAMETER]}``
(tests/unit/test_routes.py checks that each such route does)."""


def acting(connection: HTTPConnection, principal: Principal) -> Principal:
    """``principal`` acting for the end user the request names (:func:`end_user`), and the
    request's caller from here on: a refusal of the header is recorded as this caller's, and
    any later refusal names the end user too."""
    connection.state.principal = principal
    named = end_user(connection, principal)
    if named is not None:
        principal = principal.model_copy(update={"end_user": named})
        connection.state.principal = principal
    return principal


def _admit(request: Request, principal: Principal, scope: Scope) -> Principal:
    return _in_scope(acting(request, principal), scope)


def _in_scope(principal: Principal, scope: Scope) -> Principal:
    if scope not in principal.scopes:
        raise Forbidden(
            f"agencies of kind {principal.kind.value!r} may not do this "
            f"(needs scope {scope.value!r})",
            code="scope_denied",
        )
    return principal


@cache
def require(scope: Scope) -> Callable[..., Principal]:
    def dependency(
        request: Request,
        session: SessionDep,
        settings: SettingsDep,
        matchhub_end_user: EndUserHeader = None,
    ) -> Principal:
        return authenticate_request(request, session, settings, scope)

    setattr(dependency, SCOPE_ATTRIBUTE, scope)
    dependency.__name__ = f"require_{scope.name}"
    return dependency


def viewed(request: Request) -> CredentialView | None:
    """The view the caller was authenticated from by :func:`require_viewed`, if it was."""
    return cast(CredentialView | None, getattr(request.state, VIEW_ATTRIBUTE, None))


@cache
def require_viewed(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """:func:`require` for a hot read-only route: the caller is authenticated from the current
    in-memory view when there is one, on the event loop, with no database round trip, and
    :func:`viewed` tells the route which view was used, so it may answer from it too. Whatever
    the route does, its answer goes out only if its audit entry commits with the view's
    generation still the database's (web/recorder.py); if not, the route answers again from
    the database (``record_answer`` raises for it to do so) or the caller gets ``503
    view_outdated``. On a route not marked read-only the view is never used. A caller the view
    refuses is looked up in the database before being refused, so a certificate registered a
    moment ago is not turned away by a view that predates it."""

    async def dependency(request: Request) -> Principal:
        # No session or settings dependency, nor the header as a parameter (END_USER_PARAMETER):
        # the view's caller needs none of them, and each costs the hot route its share of the
        # event loop (docs/benchmarks.md).
        settings = settings_of(request)
        views = cast(CredentialViews, request.app.state.lookup_views)
        view = views.current() if is_read_only(request) else None
        if view is not None:
            gate = from_gate(request, view)
            if gate is not None:
                return _in_scope(gate, scope)
            try:
                principal = service.authenticate_with(
                    view.credential, client_certificate(request, settings), settings.hub_name
                )
            except Unauthenticated:
                views.check_soon()  # the view may predate the certificate
            else:
                setattr(request.state, VIEW_ATTRIBUTE, view)
                return _admit(request, principal, scope)
        return await run_in_threadpool(_authenticate_reading, request, settings, scope)

    setattr(dependency, SCOPE_ATTRIBUTE, scope)
    setattr(dependency, VIEWED_ATTRIBUTE, True)
    dependency.__name__ = f"require_viewed_{scope.name}"
    return dependency


def from_gate(request: Request, view: CredentialView) -> Principal | None:
    """The gate's principal, if the gate authenticated this request's certificate in ``view``
    (a request with a body) and named the end user it acts for: the same calls would give the
    same principal. ``view`` is then the one the request was authenticated from
    (:func:`viewed`)."""
    if getattr(request.state, GATE_VIEW, None) is not view:
        return None
    setattr(request.state, VIEW_ATTRIBUTE, view)
    return cast(Principal, request.state.principal)


def _authenticate_reading(request: Request, settings: Settings, scope: Scope) -> Principal:
    """:func:`authenticate_request` in a read-only session of its own: the route marked
    read-only would have read through the same engine in its own."""
    with read_session(request) as session:
        return authenticate_request(request, session, settings, scope)


def authenticates_from_view(dependant: Dependant) -> bool:
    """Whether a route (its dependency tree) uses :func:`require_viewed`."""
    return bool(getattr(dependant.call, VIEWED_ATTRIBUTE, False)) or any(
        authenticates_from_view(sub) for sub in dependant.dependencies
    )


def route_scope(dependant: Dependant) -> Scope | None:
    """The scope a route requires, found by walking its dependency tree."""
    call: Any = dependant.call
    scope: Scope | None = getattr(call, SCOPE_ATTRIBUTE, None)
    if scope is not None:
        return scope
    for sub in dependant.dependencies:
        found = route_scope(sub)
        if found is not None:
            return found
    return None


IdentityReader = Annotated[Principal, Depends(require(Scope.identity_read))]
CatalogueReader = Annotated[Principal, Depends(require(Scope.catalogue_read))]
Uploader = Annotated[Principal, Depends(require(Scope.upload))]
RosterWriter = Annotated[Principal, Depends(require(Scope.roster))]
LookupCaller = Annotated[Principal, Depends(require_viewed(Scope.lookup))]
MatchCaller = Annotated[Principal, Depends(require(Scope.match))]
CaseWorker = Annotated[Principal, Depends(require(Scope.cases))]
FeedbackReader = Annotated[Principal, Depends(require(Scope.feedback))]
AuditReader = Annotated[Principal, Depends(require(Scope.audit_read))]
AuditWitness = Annotated[Principal, Depends(require(Scope.audit_witness))]
