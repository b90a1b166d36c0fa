"""The one error hierarchy of the broker.

Every error a client can see carries an HTTP status and a stable, machine-readable ``code``;
one handler (:mod:`matchhub.web.handlers`) renders them all as
``{"error": {"code": ..., "message": ...}}``. Messages must be safe to log: they never hold a
token, a key or an identifier.

    MatchhubError (500 internal_error)
    ├── BadRequest (400)
    ├── Unauthenticated (401)       no, unknown, revoked or unverifiable client certificate
    ├── Forbidden (403)             authenticated, but the agency's kind lacks the scope
    ├── NotFound (404)
    ├── RequestTimeout (408)        a request's body did not arrive in time
    ├── Conflict (409)
    ├── Gone (410)
    ├── PayloadTooLarge (413)
    ├── UnprocessableEntity (422)   well-formed JSON that breaks the contract
    ├── TooManyRequests (429)
    └── ServiceUnavailable (503)    e.g. the audit record could not be written (fail closed)
        └── StaleGeneration         an answer from the lookups' in-memory view, which the hub
                                    moved past before its audit entry committed: never sent
"""

from __future__ import annotations

import json
from typing import Any, ClassVar


class MatchhubError(Exception):
    status_code: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.headers = headers or {}
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def rendered(self) -> bytes:
        """The body as the app's JSON responses render it, for layers below the app (the
        gate, the recorder) that answer on their own: one error shape, byte for byte."""
        return json.dumps(
            self.body(), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")


class BadRequest(MatchhubError):
    status_code = 400
    default_code = "bad_request"


class Unauthenticated(MatchhubError):
    status_code = 401
    default_code = "certificate_required"


class Forbidden(MatchhubError):
    status_code = 403
    default_code = "forbidden"


class NotFound(MatchhubError):
    status_code = 404
    default_code = "not_found"


class RequestTimeout(MatchhubError):
    status_code = 408
    default_code = "request_timeout"


class Conflict(MatchhubError):
    status_code = 409
    default_code = "conflict"


class Gone(MatchhubError):
    status_code = 410
    default_code = "gone"


class PayloadTooLarge(MatchhubError):
    status_code = 413
    default_code = "payload_too_large"


class UnprocessableEntity(MatchhubError):
    status_code = 422
    default_code = "invalid_request"


class TooManyRequests(MatchhubError):
    status_code = 429
    default_code = "rate_limited"


class ServiceUnavailable(MatchhubError):
    status_code = 503
    default_code = "unavailable"


class StaleGeneration(ServiceUnavailable):
    """An answer computed from the lookups' in-memory view was not recorded because the hub
    has changed since the view was loaded; the answer must not go out. A route that answers
    from the view handles it by answering again from the database; anywhere else it reaches
    the caller as ``503 view_outdated``, and asking again succeeds."""

    default_code = "view_outdated"

    def __init__(
        self,
        message: str = "the hub changed while this request was answered; nothing "
        "was sent, ask again",
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)


class OperatorError(Exception):
    """A CLI-side failure: printed as one clear line, exit status 1, nothing half-written."""
