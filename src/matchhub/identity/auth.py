"""Authorisation as typed dependencies.

A route states the one scope it needs by taking a parameter of type
``Annotated[Principal, Depends(require(Scope.X))]``. The dependency authenticates the caller
(certificate → registry) and checks the scope, so a route cannot forget either, and
:func:`route_scope` lets a test list every route with its scope.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant

from matchhub.identity import service
from matchhub.identity.kinds import Scope
from matchhub.identity.peer import client_certificate
from matchhub.identity.schemas import Principal
from matchhub.kit.deps import SessionDep, SettingsDep
from matchhub.kit.errors import Forbidden

SCOPE_ATTRIBUTE = "__matchhub_scope__"


@cache
def require(scope: Scope) -> Callable[..., Principal]:
    def dependency(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
        principal = service.authenticate(
            session, client_certificate(request, settings), settings.hub_name
        )
        request.state.principal = principal
        if scope not in principal.scopes:
            raise Forbidden(
                f"agencies of kind {principal.kind.value!r} may not do this "
                f"(needs scope {scope.value!r})",
                code="scope_denied",
            )
        return principal

    setattr(dependency, SCOPE_ATTRIBUTE, scope)
    dependency.__name__ = f"require_{scope.name}"
    return dependency


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
LookupCaller = Annotated[Principal, Depends(require(Scope.lookup))]
MatchCaller = Annotated[Principal, Depends(require(Scope.match))]
AuditReader = Annotated[Principal, Depends(require(Scope.audit_read))]
AuditWitness = Annotated[Principal, Depends(require(Scope.audit_witness))]
