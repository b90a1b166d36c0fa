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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from typing import Annotated, Any, Protocol, cast

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from matchhub.identity import service
from matchhub.identity.peer import client_certificate
from matchhub.identity.repository import Credential
from matchhub.identity.schemas import Principal
from matchhub.identity.scopes import Scope
from matchhub.kit.errors import Forbidden, Unauthenticated
from matchhub.kit.requests import SessionDep, SettingsDep, is_read_only
from matchhub.kit.settings import Settings

SCOPE_ATTRIBUTE = "__matchhub_scope__"
VIEWED_ATTRIBUTE = "__matchhub_viewed__"  # marks require_viewed's dependencies
VIEW_ATTRIBUTE = "lookup_view"  # request.state: the view the caller was authenticated from


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


def _admit(request: Request, principal: Principal, scope: Scope) -> Principal:
    request.state.principal = principal
    if scope not in principal.scopes:
        raise Forbidden(
            f"agencies of kind {principal.kind.value!r} may not do this "
            f"(needs scope {scope.value!r})",
            code="scope_denied",
        )
    return principal


@cache
def require(scope: Scope) -> Callable[..., Principal]:
    def dependency(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
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

    async def dependency(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
        views = cast(CredentialViews, request.app.state.lookup_views)
        view = views.current() if is_read_only(request) else None
        if view is not None:
            try:
                principal = service.authenticate_with(
                    view.credential, client_certificate(request, settings), settings.hub_name
                )
            except Unauthenticated:
                views.check_soon()  # the view may predate the certificate
            else:
                setattr(request.state, VIEW_ATTRIBUTE, view)
                return _admit(request, principal, scope)
        return await run_in_threadpool(authenticate_request, request, session, settings, scope)

    setattr(dependency, SCOPE_ATTRIBUTE, scope)
    setattr(dependency, VIEWED_ATTRIBUTE, True)
    dependency.__name__ = f"require_viewed_{scope.name}"
    return dependency


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
AuditReader = Annotated[Principal, Depends(require(Scope.audit_read))]
AuditWitness = Annotated[Principal, Depends(require(Scope.audit_witness))]
