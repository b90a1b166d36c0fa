"""The gate: a request's caller, its query, and then its body, before the request takes an
admission slot.

Without it a request took one of the ``request_concurrency`` slots (web/admission.py) as soon
as its header had arrived and then waited for its body inside the app, where FastAPI reads and
parses a body before any dependency runs: forty clients sending a byte every few seconds held
every slot, and an unregistered certificate's 200 MB body was read whole before its 401.

For a request on a ``/v1`` route with a body, or with a query parameter given twice, the gate,
on the event loop and holding nothing:

1. identifies the caller (certificate → registry: the lookups' in-memory view when it is
   current, else the database, through a few connections of its own) and the end user it acts
   for (``Matchhub-End-User``, checked as the route checks it), and checks the route's scope,
   so a ``401``, ``403`` or ``422 invalid_end_user`` goes out before a byte of the body is
   read, and every later refusal is recorded naming both;
2. refuses a query parameter the route reads given more than once (``400
   repeated_parameter``, naming it; the one check that also stops a request without a body);
3. refuses a declared length over the route's limit (``max_body_bytes``; a chunk,
   ``max_chunk_bytes``) with ``413``, and reads the body allowing ``request_idle_seconds``
   between its parts and ``request_body_seconds`` in all (else ``408``), never more than the
   limit (``413``);
4. only then hands the request, its body in memory, to admission and the app.

A refusal closes the connection (``Connection: close``), so an unread body is never read to
find the next request. The route still authenticates the caller itself (identity/auth.py): the
gate only decides whether a body is worth reading; a route authenticating from the lookups' view
takes the gate's principal when the view it would read is the one the gate read. Its refusals
are recorded in the audit log like any other, by the recorder around it (web/recorder.py).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

from cryptography import x509
from fastapi.routing import RouteContext, iter_route_contexts
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import HTTPConnection
from starlette.routing import Match

from matchhub.identity import service as identity
from matchhub.identity.auth import (
    GATE_VIEW,
    CredentialView,
    CredentialViews,
    acting,
    route_scope,
)
from matchhub.identity.peer import client_certificate
from matchhub.identity.schemas import Principal
from matchhub.kit.errors import (
    BadRequest,
    Forbidden,
    MatchhubError,
    PayloadTooLarge,
    RequestTimeout,
    Unauthenticated,
    UnprocessableEntity,
)
from matchhub.kit.requests import marked_chunk_sized
from matchhub.kit.settings import Settings

IDENTIFY_CONNECTIONS = 4
"""Callers identified from the database at once (the read-only pool holds as many more)."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class _ClientGone(Exception):
    """The client hung up while its body was arriving: there is no one to answer."""


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.strip().isdigit():
            return int(value)
    return None


def _repeated_names(scope: Scope) -> set[str]:
    """The names the query string gives more than once, parsed as the route will parse them."""
    if not scope["query_string"]:
        return set()
    counts = Counter(name for name, _ in QueryParams(scope["query_string"]).multi_items())
    return {name for name, count in counts.items() if count > 1}


def _first_read(route: Any, names: set[str]) -> str | None:
    """The first of ``names`` that the route reads as a query parameter. Every one it reads
    takes one value (tests/unit/test_routes.py): given twice, which one counts is a guess the
    broker will not make (HTTP parameter pollution), where a repeat it never reads is moot."""
    if not names:
        return None
    pending, read = [route.dependant], []
    while pending:
        dependant = pending.pop()
        read += [field.alias for field in dependant.query_params]
        pending += dependant.dependencies
    return next((name for name in sorted(read) if name in names), None)


def _route(routes: list[RouteContext], scope: Scope) -> Any | None:
    """The route (its ``APIRoute``) the router will pick for this request, if any."""
    for route in routes:
        match, _child = route.matches(scope)
        if match is Match.FULL:
            return route.original_route
    return None


class _Routes:
    """:func:`_route`, remembered for the routes whose path has no parameters (``/v1/lookups``,
    not ``/v1/uploads/{id}``): a request's path and method then name one route, and the hot
    routes are found without trying every route before them. Bounded by the number of such
    routes: any other path is matched afresh each time."""

    def __init__(self, routes: list[RouteContext]) -> None:
        self._routes = routes
        self._fixed: dict[tuple[str, str, str], Any] = {}

    def find(self, scope: Scope) -> Any | None:
        key = (scope.get("root_path", ""), scope["path"], scope["method"])
        route = self._fixed.get(key)
        if route is None:
            route = _route(self._routes, scope)
            if route is not None and "{" not in route.path:
                self._fixed[key] = route
        return route


def _limit(route: Any, settings: Settings) -> tuple[int, str]:
    if marked_chunk_sized(route):
        return settings.max_chunk_bytes, "chunk_too_large"
    return settings.max_body_bytes, "body_too_large"


def _from_database(
    factory: sessionmaker[Session], certificate: x509.Certificate | None, hub: str
) -> Principal:
    with factory() as session:
        return identity.authenticate(session, certificate, hub)


class GateMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._identifying = asyncio.Semaphore(IDENTIFY_CONNECTIONS)
        self._routes: _Routes | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        has_body, repeated = _has_body(scope), _repeated_names(scope)
        if not has_body and not repeated:
            await self.app(scope, receive, send)
            return
        if self._routes is None:
            self._routes = _Routes(list(iter_route_contexts(scope["app"].routes)))
        route = self._routes.find(scope)
        if route is None:  # 404 or 405 from the router, which reads no body
            await self.app(scope, receive, send)
            return
        ambiguous = _first_read(route, repeated)
        if not has_body and ambiguous is None:  # a repeat the route does not read
            await self.app(scope, receive, send)
            return
        settings = cast(Settings, scope["app"].state.settings)
        principal: Principal | None = None
        try:
            principal, view = await self._identify(scope, settings)
            # The view it was found in, if any: require_viewed takes this principal rather than
            # authenticate the same certificate in the same view again (identity/auth.py).
            scope.setdefault("state", {})[GATE_VIEW] = view
            # Known from here on, with the end user it acts for: a body the route then cannot
            # read (not JSON, not UTF-8) is refused, and recorded, as theirs (the route's own
            # check replaces it).
            principal = acting(HTTPConnection(scope), principal)
            needed = route_scope(route.dependant)
            if needed is not None and needed not in principal.scopes:
                raise Forbidden(
                    f"agencies of kind {principal.kind.value!r} may not do this "
                    f"(needs scope {needed.value!r})",
                    code="scope_denied",
                )
            if ambiguous is not None:
                raise BadRequest(
                    f"the query parameter {ambiguous!r} is given more than once; give it once",
                    code="repeated_parameter",
                    details={"parameter": ambiguous},
                )
            body = await _read_body(scope, receive, route, settings)
            _refuse_what_is_not_text(body)
        except MatchhubError as refusal:
            await _refuse(scope, send, refusal, route, principal)
            return
        except _ClientGone:
            return
        await self.app(scope, _replay(body, receive), send)

    async def _identify(
        self, scope: Scope, settings: Settings
    ) -> tuple[Principal, CredentialView | None]:
        """The caller, and the view it was found in (None: found in the database)."""
        certificate = client_certificate(HTTPConnection(scope), settings)
        views = cast(CredentialViews, scope["app"].state.lookup_views)
        view = views.current()
        if view is not None:
            try:
                principal = identity.authenticate_with(
                    view.credential, certificate, settings.hub_name
                )
            except Unauthenticated:
                views.check_soon()  # the view may predate the certificate: ask the database
            else:
                return principal, view
        factory = cast(sessionmaker[Session], scope["app"].state.read_sessionmaker)
        async with self._identifying:
            found = await run_in_threadpool(_from_database, factory, certificate, settings.hub_name)
        return found, None


async def _read_body(scope: Scope, receive: Any, route: Any, settings: Settings) -> bytes:
    limit, code = _limit(route, settings)
    too_large = PayloadTooLarge(f"this body is at most {limit} bytes", code=code)
    declared = _declared_length(scope)
    if declared is not None and declared > limit:
        raise too_large
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.request_body_seconds
    body = bytearray()
    while True:
        wait = min(settings.request_idle_seconds, deadline - loop.time())
        try:
            if wait <= 0:
                raise TimeoutError
            # asyncio.timeout, not wait_for: that made a task of every part of every body.
            async with asyncio.timeout(wait):
                message = await receive()
        except TimeoutError:
            raise RequestTimeout(
                "the request body did not arrive in time", code="body_timeout"
            ) from None
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body += message.get("body", b"")
        if len(body) > limit:
            raise too_large
        if not message.get("more_body", False):
            return bytes(body)


# The JSON escapes of what is no text a column can hold: a NUL (PostgreSQL's text types refuse
# it) and a UTF-16 surrogate (unpaired, it is no Unicode). Rare in a real body, so the full
# check runs on few.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def _refuse_what_is_not_text(body: bytes) -> None:
    """A JSON (or NDJSON) body whose escapes leave a NUL (``"\\u0000"``) or a lone surrogate
    (``"\\ud800"``) in a string is refused here with a 422. Past this point a NUL reached a
    query on PostgreSQL (a 500), and either reached the request's audit entry, which cannot
    hold it, and failed the writer's whole batch, other callers' too.

    JSON in UTF-16 or UTF-32, which ``json.loads`` (and so a route) reads as well, is looked
    at decoded; an NDJSON body's lines are split where its parser splits them, at LF alone
    (a CR inside a line is JSON's whitespace)."""
    if not _suspect(body):
        return
    whole = _holds_non_text(body)
    if whole or (whole is None and any(_holds_non_text(line) for line in body.split(b"\n"))):
        raise UnprocessableEntity(
            "the body holds a JSON escape of a NUL (\\u0000) or of an unpaired UTF-16 "
            "surrogate (\\ud800 to \\udfff), which is not text",
            code="invalid_request",
        )


def _suspect(body: bytes) -> bool:
    encoding = json.detect_encoding(body)
    if encoding == "utf-8":
        return _SUSPECT_ESCAPE.search(body) is not None
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError:  # no such text: not JSON, the route says so
        return False
    return _SUSPECT_ESCAPE.search(text.encode("utf-8", "surrogatepass")) is not None


def _holds_non_text(document: bytes) -> bool | None:
    """Whether a string (or a key) of the JSON ``document`` holds a NUL or a lone surrogate;
    None if it is not JSON, or nests too deep to parse (the route says so)."""
    try:
        parsed = json.loads(document)
    except (ValueError, RecursionError):
        return None
    pending = [parsed]
    while pending:  # a loop, not recursion: what json.loads could nest, this walks
        value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value or not _is_unicode(value):
                return True
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def _is_unicode(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _replay(body: bytes, receive: Any) -> Callable[[], Awaitable[Message]]:
    """The body as one message, then the connection's own messages (a disconnect)."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return cast(Message, await receive())

    return replayed


async def _refuse(
    scope: Scope, send: Any, refusal: MatchhubError, route: Any, principal: Principal | None
) -> None:
    """The refusal in the one error shape, recorded by the audit middleware around the gate
    (with the route and, once known, the caller), and the connection closed after it."""
    state = scope.setdefault("state", {})
    state["error_code"] = refusal.code
    if principal is not None:
        state["principal"] = principal
    scope["route"] = route
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    headers += [(k.lower().encode(), v.encode()) for k, v in refusal.headers.items()]
    await send({"type": "http.response.start", "status": refusal.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": refusal.rendered()})
