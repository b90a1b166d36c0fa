"""Every API request, accepted or refused, becomes one audit entry.

Accepted requests that change something are recorded by the request's own transaction, just
before it commits (:func:`record_accepted`, called from the session dependency), so the action
and its record commit together; if the record cannot be written the action is rolled back and
the caller gets ``503 audit_unavailable`` (fail closed). Accepted requests of routes marked
read-only (:data:`ReadOnly`: lookups, ``whoami``) and requests that did not get that far (refused
by authentication, authorisation, validation, routing or rate limits) are appended by the
:class:`~matchhub.web.writer.AuditWriter`, which commits waiting entries together; the
response waits for that commit, and is replaced by a 503 if it fails.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import replace
from typing import Any, cast

import structlog
from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from matchhub.audit import service
from matchhub.identity.peer import tls_extension_certificate
from matchhub.identity.schemas import Principal
from matchhub.keystore.pki import fingerprint
from matchhub.kit.requests import AUDIT_NOTE, StaleGeneration
from matchhub.web.writer import AuditWriter

log = structlog.get_logger("matchhub.audit")

UNAUDITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_DONE = "audit_done"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


def _state(scope: Scope) -> dict[str, Any]:
    return cast(dict[str, Any], scope.setdefault("state", {}))


def _entry(scope: Scope, status: int, error: str | None) -> service.PendingEntry:
    state = _state(scope)
    principal: Principal | None = state.get("principal")
    route = scope.get("route")
    note = dict(state.get(AUDIT_NOTE, {}))
    subjects = note.pop("subjects", [])
    body: dict[str, Any] = {
        "method": scope.get("method"),
        "route": getattr(route, "path", None),
        "status": status,
        "outcome": "accepted" if status < 400 else "refused",
        "error": error,
        **note,
    }
    if principal is not None:
        body.update(
            agency=principal.code,
            agency_kind=principal.kind.value,
            certificate=principal.certificate_fingerprint,
        )
        if principal.end_user is not None:
            body["end_user"] = principal.end_user
    else:
        try:
            cert = tls_extension_certificate(scope)
        except ValueError:
            cert = None
        body["certificate"] = fingerprint(cert) if cert is not None else None
    return service.PendingEntry(
        kind="request",
        body=body,
        agency=principal.code if principal else None,
        route=body["route"],
        subjects=subjects,
        end_user=principal.end_user if principal else None,
    )


def _enabled(scope: Scope) -> bool:
    return bool(scope["app"].state.settings.audit_enabled)


def _append(session: Session, scope: Scope, status: int, error: str | None) -> None:
    if not _enabled(scope):
        return
    keys = cast(service.AuditKeys, scope["app"].state.audit_keys)
    service.append_many(session, keys, [_entry(scope, status, error)])


def _status(request: Request) -> int:
    route = request.scope.get("route")
    return int(getattr(route, "status_code", None) or 200)


def record_accepted(session: Session, request: Request) -> None:
    """Append the entry in the request's own transaction; after the commit, call
    :func:`mark_recorded` so the middleware does not record the request twice."""
    _append(session, request.scope, _status(request), None)


async def record_through_writer(request: Request) -> None:
    """A read-only route's entry, appended by the group-commit writer; returns once it has
    committed, raises if it did not. Nothing, if the route recorded its answer itself."""
    if not _state(request.scope).get(_DONE):
        await _write(request.scope, _status(request), None)


async def record_answer(request: Request, *, generation: int) -> None:
    """From inside a read-only route: append its entry now, on condition that ``generation``
    (the view generation its answer was computed at) is still the database's. Raises
    :class:`~matchhub.web.writer.StaleGeneration` if it is not, having appended nothing: the
    route must then answer from the database (and its entry is recorded as usual)."""
    scope = request.scope
    if _enabled(scope):
        writer = cast(AuditWriter, scope["app"].state.audit_writer)
        entry = replace(_entry(scope, _status(request), None), generation=generation)
        await writer.record(entry)
    else:
        # No audit commit to ride on: ask the database directly.
        views = scope["app"].state.lookup_views
        if await run_in_threadpool(views.generation) != generation:
            raise StaleGeneration("the hub changed under the view")
    _state(scope)[_DONE] = True


def mark_recorded(request: Request) -> None:
    _state(request.scope)[_DONE] = True


async def _write(scope: Scope, status: int, error: str | None) -> None:
    if _enabled(scope):
        writer = cast(AuditWriter, scope["app"].state.audit_writer)
        await writer.record(_entry(scope, status, error))
    _state(scope)[_DONE] = True


_UNAVAILABLE = (
    b'{"error":{"code":"audit_unavailable","message":"the audit record could not be written; '
    b'nothing was done"}}'
)


class AuditMiddleware:
    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: Callable[..., Any], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http" or scope["path"] in UNAUDITED_PATHS or not _enabled(scope):
            await self.app(scope, receive, send)
            return
        replaced = False

        async def guarded(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start" and not _state(scope).get(_DONE):
                status = int(message["status"])
                try:
                    await _write(scope, status, _state(scope).get("error_code"))
                except Exception:  # fail closed: no record, no answer
                    log.exception("could not audit a refused request; answering 503")
                    replaced = True
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 503,
                            "headers": [(b"content-type", b"application/json")],
                        }
                    )
                    await send({"type": "http.response.body", "body": _UNAVAILABLE})
                    return
            await send(message)

        try:
            await self.app(scope, receive, guarded)
        except Exception:
            if not _state(scope).get(_DONE):
                try:
                    await _write(scope, 500, "internal_error")
                except Exception:  # the 500 itself tells the client nothing was done
                    log.exception("could not audit a failed request")
            raise
