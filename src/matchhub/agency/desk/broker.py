"""Calling the broker as a named member of staff.

Every request the desk makes goes through `BrokerClient`, made for one `Staff` and carrying
their pseudonym in ``Matchhub-End-User`` (never their name), over mutual TLS with the
ministry's certificate (the connector's client, `matchhub.agency.connector.client`). There is
no other way to reach the broker from the desk, so no request can forget to say who asked.

Errors become `BrokerError` with the broker's stable code and a message safe to show: the
broker's messages never hold a token or an identifier.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from matchhub.agency.connector.client import make_client
from matchhub.agency.desk.accounts import Staff
from matchhub.agency.desk.config import DeskConfig

END_USER_HEADER = "Matchhub-End-User"
TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=300.0, pool=30.0)


class BrokerError(Exception):
    """The broker refused, or could not be reached. ``code`` is the broker's stable error code
    (or ``unreachable``, ``tls``); the message is safe to show to staff and to log."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status
        self.details = details or {}


@dataclass(frozen=True)
class Catalogue:
    """The flags granted to the ministry and the purposes, with their Arabic and English labels
    (``GET /v1/flags``)."""

    flags: list[dict[str, Any]]
    purposes: list[dict[str, Any]]

    def flag_label(self, code: str, language: str) -> str:
        for flag in self.flags:
            if flag["code"] == code:
                return str(flag["labels"][language])
        return code

    def purpose_label(self, code: str, language: str) -> str:
        for purpose in self.purposes:
            if purpose["code"] == code:
                return str(purpose["labels"][language])
        return code

    def labels(self) -> dict[str, dict[str, str]]:
        return {f["code"]: dict(f["labels"]) for f in self.flags}


class BrokerClient:
    def __init__(
        self,
        config: DeskConfig,
        staff: Staff,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.staff = staff
        self.http = make_client(
            config.broker, config.credentials, timeout=TIMEOUT, transport=transport
        )
        self.http.headers[END_USER_HEADER] = staff.pseudonym
        self.http.headers["user-agent"] = "matchhub-desk"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _transport_error(exc) from None
        if response.status_code >= 400:
            raise _refusal(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self.request(method, path, **kwargs).json()
        return body

    @contextmanager
    def stream(self, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        try:
            with self.http.stream("GET", path, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _refusal(response)
                yield response
        except httpx.TransportError as exc:
            raise _transport_error(exc) from None

    # --- the broker's API, as the desk uses it ----------------------------------------------

    def whoami(self) -> dict[str, Any]:
        return self.json("GET", "/v1/whoami")

    def catalogue(self) -> Catalogue:
        document = self.json("GET", "/v1/flags")
        return Catalogue(list(document["flags"]), list(document["purposes"]))

    def lookup(self, purpose: str, tokens: Sequence[str]) -> list[dict[str, Any]]:
        return list(self.lookup_answer(purpose, tokens)["results"])

    def lookup_answer(self, purpose: str, tokens: Sequence[str]) -> dict[str, Any]:
        """The lookup's whole answer; its ``reference`` is the sequence number of the lookup's
        audit entry, what a case opened from it names (None when the broker keeps no log)."""
        return self.json("POST", "/v1/lookups", json={"purpose": purpose, "tokens": tokens})

    def open_job(self, purpose: str, flags: Sequence[str] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"purpose": purpose}
        if flags:
            body["flags"] = list(flags)
        return self.json("POST", "/v1/match-jobs", json=body)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.json("GET", f"/v1/match-jobs/{job_id}")

    def results(self, job_id: str) -> Any:
        """The job's results as CSV (``token,flag,source,as_of``), streamed: a context manager
        giving the response."""
        return self.stream(f"/v1/match-jobs/{job_id}/results", headers={"accept": "text/csv"})

    # --- cases (docs/desk.md, "Cases") -------------------------------------------------------

    def open_case(
        self,
        *,
        token: str,
        flags: Sequence[str],
        job: str | None = None,
        lookup: int | None = None,
    ) -> dict[str, Any]:
        """Open a case for one flagged roster member, from a match job or a lookup (its audit
        entry's sequence number): only the token and the flag codes go."""
        body: dict[str, Any] = {"token": token, "flags": list(flags)}
        if job is not None:
            body["job"] = job
        else:
            body["lookup"] = lookup
        return self.json("POST", "/v1/cases", json=body)

    def transition(self, case_id: str, to: str, reason: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"to": to}
        if reason:
            body["reason"] = reason
        return self.json("POST", f"/v1/cases/{case_id}/transitions", json=body)

    def case(self, case_id: str) -> dict[str, Any]:
        """The case with its history."""
        return self.json("GET", f"/v1/cases/{case_id}")

    def feedback(self) -> dict[str, Any]:
        """The ministry's confirmation rates per flag and per source (``GET /v1/feedback``)."""
        return self.json("GET", "/v1/feedback")

    def cases(self, **filters: str) -> list[dict[str, Any]]:
        """Every case of the ministry's (filtered: ``state``, ``due_before``...), page by page."""
        found: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            params = {**filters, "limit": "1000", "offset": str(offset)}
            answer = self.json("GET", "/v1/cases", params=params)
            found += answer["cases"]
            offset = answer.get("next_offset")
        return found


def _refusal(response: httpx.Response) -> BrokerError:
    try:
        error = response.json()["error"]
        details = error.get("details")
        return BrokerError(
            str(error["code"]),
            str(error["message"]),
            response.status_code,
            details if isinstance(details, dict) else None,
        )
    except (ValueError, KeyError, TypeError):
        return BrokerError("http_error", f"HTTP {response.status_code}", response.status_code)


def _transport_error(exc: httpx.TransportError) -> BrokerError:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return BrokerError(
                "tls",
                "the broker refused the desk's certificate, or presented one the desk "
                "does not trust",
            )
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, httpx.TimeoutException):
        return BrokerError("unreachable", "the broker did not answer in time")
    return BrokerError("unreachable", "the broker cannot be reached")
