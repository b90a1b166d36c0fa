"""Every API request, accepted or refused, becomes one audit entry.

Accepted requests that change something are recorded by the request's own transaction, just
before it commits (:func:`record_accepted`, called from the session dependency), so the action
and its record commit together; if the record cannot be written the action is rolled back and
the caller gets ``503 audit_unavailable`` (fail closed). Accepted requests of routes marked
read-only (:data:`ReadOnly`: lookups, ``whoami``) and requests that did not get that far (refused
by authentication, authorisation, validation, routing or rate limits) are appended by the
:class:`~matchhub.web.writer.AuditWriter`, which commits waiting entries together; the
response waits for that commit, and is replaced by a 503 if it fails.

A caller authenticated from the lookups' in-memory view (identity/auth.py ``require_viewed``,
only on read-only routes) was answered from data that may be behind the database. The entry of
every answer to such a request carries the view's generation, whatever the route, so the
writer commits it only if the generation is still the database's; otherwise nothing is
appended and the answer is not sent: the route answers again from the database if it knows
how (the lookups do), or the caller gets ``503 view_outdated``. No route can send an answer
from a stale view. A refusal (4xx) tells the caller nothing of the hub's data, so it goes out
without the check, as a refusal from the database would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

import structlog
from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from matchhub.audit import service
from matchhub.identity.auth import VIEW_ATTRIBUTE, CredentialView
from matchhub.identity.peer import claimed_fingerprint
from matchhub.identity.schemas import Principal
from matchhub.kit.errors import StaleGeneration
from matchhub.kit.requests import AUDIT_NOTE
from matchhub.web.writer import AuditWriter

log = structlog.get_logger("matchhub.audit")

UNAUDITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_DONE = "audit_done"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


def _state(scope: Scope) -> dict[str, Any]:
    return cast(dict[str, Any], scope.setdefault("state", {}))


def _checked_generation(scope: Scope, status: int) -> int | None:
    """The generation an entry must be committed at: that of the in-memory view the caller was
    authenticated from, if it was and the route accepted the request."""
    view = cast(CredentialView | None, _state(scope).get(VIEW_ATTRIBUTE))
    return view.generation if view is not None and status < 400 else None


def _forget_view(scope: Scope) -> None:
    """The view is behind the database: what is recorded of this request from now on (its
    answer from the database, or its 503) depends on the database alone."""
    _state(scope)[VIEW_ATTRIBUTE] = None


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
        # Behind the proxy, the client's certificate, never the proxy's (the one adapter).
        body["certificate"] = claimed_fingerprint(scope, scope["app"].state.settings)
    return service.PendingEntry(
        kind="request",
        body=body,
        agency=principal.code if principal else None,
        route=body["route"],
        subjects=subjects,
        end_user=principal.end_user if principal else None,
        generation=_checked_generation(scope, status),
        outcome=body["outcome"],
        error=error,
        # (cut to its column: a refused request's purpose may be anything the caller sent)
        purpose=purpose[:64] if isinstance(purpose := note.get("purpose"), str) else None,
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


async def record_answer(request: Request) -> int | None:
    """From inside a read-only route: append its entry now, before the route returns, and
    return its sequence number (``None`` when the log is off); for a caller authenticated from
    the view, on condition that the view's generation is still the database's. Raises
    :class:`~matchhub.kit.errors.StaleGeneration` if it is not, having appended nothing and
    forgotten the view: the route must then answer from the database (and its entry is
    recorded as usual), or let the error become its answer."""
    return await _write(request.scope, _status(request), None)


def mark_recorded(request: Request) -> None:
    _state(request.scope)[_DONE] = True


async def _write(scope: Scope, status: int, error: str | None) -> int | None:
    """Append the request's entry through the group-commit writer, with the generation check
    if the caller was authenticated from the view (also when the log is off: the database is
    then asked directly); its sequence number, ``None`` when the log is off."""
    seq: int | None = None
    try:
        if _enabled(scope):
            writer = cast(AuditWriter, scope["app"].state.audit_writer)
            seq = await writer.record(_entry(scope, status, error))
        elif (generation := _checked_generation(scope, status)) is not None:
            views = scope["app"].state.lookup_views
            if await run_in_threadpool(views.generation) != generation:
                raise StaleGeneration()
    except StaleGeneration:
        _forget_view(scope)
        raise
    _state(scope)[_DONE] = True
    return seq


_UNAVAILABLE = (
    b'{"error":{"code":"audit_unavailable","message":"the audit record could not be written; '
    b'nothing was done"}}'
)


async def _send_error(send: Callable[[Message], Awaitable[None]], status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AuditMiddleware:
    """Records what the routes did not: refusals, failures, and answers of routes without a
    session. Runs with the log off too, for the view-generation check of an answer worked out
    from the lookups' view."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: Callable[..., Any], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http" or scope["path"] in UNAUDITED_PATHS:
            await self.app(scope, receive, send)
            return
        replaced = False

        async def guarded(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start" and not _state(scope).get(_DONE):
                replaced = not await _record_then_send(scope, message, send)
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


async def _record_then_send(
    scope: Scope, start: Message, send: Callable[[Message], Awaitable[None]]
) -> bool:
    """Record a response the route did not record, then start it; fail closed. A response
    worked out from a view the hub has moved past is not sent either: the caller gets
    ``503 view_outdated``, itself recorded (the view forgotten, so it needs no check). Whether
    the response went out as it was."""
    try:
        try:
            await _write(scope, int(start["status"]), _state(scope).get("error_code"))
        except StaleGeneration as stale:
            await _write(scope, stale.status_code, stale.code)
            await _send_error(send, stale.status_code, stale.rendered())
            return False
    except Exception:  # fail closed: no record, no answer
        log.exception("could not audit a refused request; answering 503")
        await _send_error(send, 503, _UNAVAILABLE)
        return False
    await send(start)
    return True
