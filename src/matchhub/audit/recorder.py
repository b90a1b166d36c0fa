"""Every API request, accepted or refused, becomes one audit entry.

Accepted requests are recorded by the request's own transaction, just before it commits
(:func:`record_accepted`, called from the session dependency), so the action and its record
commit together; if the record cannot be written the action is rolled back and the caller gets
``503 audit_unavailable`` (fail closed). Requests that did not get that far (refused by
authentication, authorisation, validation, routing or rate limits) are recorded by
:class:`AuditMiddleware` in a transaction of their own before the response leaves; if that
fails, the response is replaced by a 503.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, cast

import structlog
from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from matchhub.audit import service
from matchhub.identity.peer import tls_extension_certificate
from matchhub.identity.schemas import Principal
from matchhub.keystore.pki import fingerprint
from matchhub.kit.db import session_scope

log = structlog.get_logger("matchhub.audit")

UNAUDITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_NOTE = "audit_note"
_DONE = "audit_done"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


def _state(scope: Scope) -> dict[str, Any]:
    return cast(dict[str, Any], scope.setdefault("state", {}))


def audit_note(request: Request) -> dict[str, Any]:
    """What a route adds to its audit entry (purpose, counts, ids, subject digests)."""
    return cast(dict[str, Any], _state(request.scope).setdefault(_NOTE, {}))


AuditNote = Annotated[dict[str, Any], Depends(audit_note)]


def _entry(scope: Scope, status: int, error: str | None) -> dict[str, Any]:
    state = _state(scope)
    principal: Principal | None = state.get("principal")
    route = scope.get("route")
    note = dict(state.get(_NOTE, {}))
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
    else:
        try:
            cert = tls_extension_certificate(scope)
        except ValueError:
            cert = None
        body["certificate"] = fingerprint(cert) if cert is not None else None
    return {
        "body": body,
        "subjects": subjects,
        "agency": principal.code if principal else None,
        "route": body["route"],
    }


def _enabled(scope: Scope) -> bool:
    return bool(scope["app"].state.settings.audit_enabled)


def _append(session: Session, scope: Scope, status: int, error: str | None) -> None:
    if not _enabled(scope):
        return
    keys = cast(service.AuditKeys, scope["app"].state.audit_keys)
    entry = _entry(scope, status, error)
    service.append(
        session,
        keys,
        kind="request",
        body=entry["body"],
        agency=entry["agency"],
        route=entry["route"],
        subjects=entry["subjects"],
    )


def record_accepted(session: Session, request: Request) -> None:
    """Append the entry in the request's own transaction; after the commit, call
    :func:`mark_recorded` so the middleware does not record the request twice."""
    route = request.scope.get("route")
    _append(session, request.scope, int(getattr(route, "status_code", None) or 200), None)


def mark_recorded(request: Request) -> None:
    _state(request.scope)[_DONE] = True


def _record_refused(scope: Scope, status: int, error: str | None) -> None:
    factory = cast(sessionmaker[Session], scope["app"].state.sessionmaker)
    with session_scope(factory) as session:
        _append(session, scope, status, error)
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
                    await run_in_threadpool(
                        _record_refused, scope, status, _state(scope).get("error_code")
                    )
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
                    await run_in_threadpool(_record_refused, scope, 500, "internal_error")
                except Exception:  # the 500 itself tells the client nothing was done
                    log.exception("could not audit a failed request")
            raise
