"""One handler renders every error as ``{"error": {"code", "message"}}``.

Only errors we raised on purpose (:class:`MatchhubError`), request-validation failures and
Starlette's routing errors (404, 405) become 4xx here. Anything else is a bug: it is logged and
answered 500 ``internal_error``, never disguised as a client's fault.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException

from matchhub.kit.errors import MatchhubError

log = structlog.get_logger("matchhub")

_HTTP_CODES = {
    400: "bad_request",
    401: "certificate_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


UNREADABLE_REQUEST = MatchhubError(
    "the request could not be read as HTTP/1.1: malformed (conflicting or invalid framing "
    "headers, say), or a request line and headers past 80 kB together",
    code="malformed_request",
)
"""What the server answers (400) to bytes its parser refuses before any route is reached: a
100 kB query string, say. Still the one error shape (web/server.py)."""


def unreadable_request_response() -> bytes:
    """The whole HTTP/1.1 response for :data:`UNREADABLE_REQUEST`; the connection then closes."""
    body = json.dumps(UNREADABLE_REQUEST.body(), separators=(",", ":")).encode("ascii")
    head = (
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def error_response(
    status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


async def _matchhub_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(MatchhubError, exc)
    request.state.error_code = exc.code
    return error_response(exc.status_code, exc.body(), exc.headers)


def _safe_location(loc: Any) -> str:
    return ".".join(str(part) for part in loc)


_PARTS = {
    "body": "the request body",
    "path": "the path's parameters",
    "query": "the query parameters",
    "header": "the headers",
}


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, exc)
    # Echo where and what, never the offending value: it might be an identifier.
    problems = [
        {"at": _safe_location(e.get("loc", ())), "problem": e.get("msg", "")}
        for e in exc.errors()[:20]
    ]
    request.state.error_code = "invalid_request"
    # Where: the body, or a path, query or header parameter (a chunk's seq, a limit).
    parts = sorted({str(e.get("loc", ("body",))[0]) for e in exc.errors()[:20]} or {"body"})
    where = " and ".join(_PARTS.get(part, part) for part in parts)
    verb = "does" if parts == ["body"] else "do"
    body = MatchhubError(f"{where} {verb} not match the schema", code="invalid_request")
    payload = body.body()
    payload["error"]["details"] = {"problems": problems}
    return error_response(422, payload)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, exc)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    request.state.error_code = code
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(
        exc.status_code, {"error": {"code": code, "message": str(exc.detail)}}, headers
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path. Starlette's own ``Allow`` names only the
    first route whose path matched (``GET`` for ``/v1/uploads/{id}``, without ``DELETE``)."""
    path = request.scope["path"]
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= route.methods or set()
    return sorted(methods)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", path=request.url.path, error=type(exc).__name__)
    request.state.error_code = "internal_error"
    return error_response(500, {"error": {"code": "internal_error", "message": "internal error"}})


def install(app: FastAPI) -> None:
    app.add_exception_handler(MatchhubError, _matchhub_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
