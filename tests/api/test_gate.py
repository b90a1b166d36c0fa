"""The gate (web/gate.py): the caller is identified, and its scope checked, before a byte of a
request body is read; a body over its route's limit, or one that does not arrive in time, is
refused in the one error shape; none of it takes an admission slot.

These tests drive the app at the ASGI level, so they can count how many bytes of a body the
broker pulled from the connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from matchhub.audit.models import AuditEntry
from matchhub.identity.peer import with_client_certificate
from matchhub.keystore import pki
from matchhub.protocol.kinds import AgencyKind
from tests.conftest import InProcessApi

MIB = 1024 * 1024


@dataclass
class Exchange:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    pulled: int = 0  # bytes of the request body the app took from the connection

    def error(self) -> str:
        return str(json.loads(self.body)["error"]["code"])


def _call(
    api: InProcessApi,
    pem: str | None,
    method: str,
    path: str,
    parts: Iterator[bytes],
    *,
    length: int | None = None,
    hang_after: int | None = None,
) -> Exchange:
    """One request: its body sent part by part, the connection hanging (sending nothing more)
    after ``hang_after`` parts, if given."""
    seen = Exchange()
    headers = [(b"content-type", b"application/json")]
    headers.append(
        (b"content-length", str(length).encode())
        if length is not None
        else (b"transfer-encoding", b"chunked")
    )
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8443),
    }
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if hang_after is not None and sent >= hang_after:
            await asyncio.Event().wait()  # the client sends nothing more
        part = next(parts, None)
        if part is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        sent += 1
        seen.pulled += len(part)
        return {"type": "http.request", "body": part, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen.status = message["status"]
            seen.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            seen.body += message.get("body", b"")

    async def run() -> None:
        await with_client_certificate(api.app, pem)(scope, receive, send)

    api.portal.call(run)
    return seen


def _endless(size: int = MIB) -> Iterator[bytes]:
    block = b"x" * size
    while True:
        yield block


def _pem(api: InProcessApi, code: str) -> str:
    return api.hub.credentials[code].certificate.read_text()


def test_an_unregistered_certificates_huge_body_is_refused_unread(api: InProcessApi) -> None:
    hub = api.hub
    ghost = pki.issue_client(hub.ca, hub.settings.hub_name, "ghost", "TEST-ONLY ghost")
    pem = pki.cert_pem(ghost.certificate).decode()
    seen = _call(api, pem, "POST", "/v1/lookups", _endless(), length=200 * MIB)
    assert seen.status == 401
    assert seen.error() == "certificate_unknown"
    assert seen.pulled == 0
    assert seen.headers["connection"] == "close"
    # Without a declared length as well: refused before the first part is taken.
    seen = _call(api, pem, "POST", "/v1/lookups", _endless())
    assert (seen.status, seen.pulled) == (401, 0)


def test_a_caller_without_the_scope_is_refused_before_its_body(api: InProcessApi) -> None:
    api.hub.add_agency("pension", AgencyKind.pension)
    seen = _call(api, _pem(api, "pension"), "POST", "/v1/lookups", _endless(), length=100 * MIB)
    assert (seen.status, seen.error(), seen.pulled) == (403, "scope_denied", 0)


@pytest.mark.settings(max_body_bytes=64 * 1024)
def test_bodies_over_the_limit_are_refused_413(api: InProcessApi) -> None:
    api.hub.add_agency("molsa", AgencyKind.welfare)
    pem = _pem(api, "molsa")
    declared = _call(api, pem, "POST", "/v1/lookups", _endless(), length=64 * 1024 + 1)
    assert (declared.status, declared.error(), declared.pulled) == (413, "body_too_large", 0)
    streamed = _call(api, pem, "POST", "/v1/lookups", _endless(16 * 1024))
    assert (streamed.status, streamed.error()) == (413, "body_too_large")
    assert streamed.pulled <= 64 * 1024 + 16 * 1024  # never more than the limit and one part
    # A chunk has its own, larger limit.
    opened = _call(api, pem, "PUT", "/v1/uploads/" + "0" * 32 + "/chunks/0", iter([b"{}\n"] * 5))
    assert opened.status == 404  # read in full (well within max_chunk_bytes), then routed


@pytest.mark.settings(request_idle_seconds=0.2, request_body_seconds=30)
def test_a_body_that_stops_arriving_is_refused_408(api: InProcessApi) -> None:
    api.hub.add_agency("molsa", AgencyKind.welfare)
    seen = _call(
        api, _pem(api, "molsa"), "POST", "/v1/lookups", iter([b'{"purpose": ']), hang_after=1
    )
    assert (seen.status, seen.error()) == (408, "body_timeout")
    assert seen.headers["connection"] == "close"
    with api.client("molsa") as client:  # and the refusal is in the audit log, by name
        client.get("/v1/whoami")
    with api.hub.session() as session:
        bodies = [json.loads(e.body) for e in session.query(AuditEntry).all()]
    refused = [b for b in bodies if b.get("error") == "body_timeout"]
    assert [(b["agency"], b["route"]) for b in refused] == [("molsa", "/v1/lookups")]
