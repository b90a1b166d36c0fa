"""What the server's HTTP parser refuses before any route is reached is answered in the one
error shape too (the in-process bad-input tests: tests/api/test_bad_input.py). httpx itself
refuses to send a URL this long, so the request goes over a plain TLS socket."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

from matchhub.agency.connector.client import AgencyCredentials
from matchhub.protocol.kinds import AgencyKind
from tests.conftest import RunningServer


def _exchange(server: RunningServer, creds: AgencyCredentials, target: str) -> bytes:
    url = urlsplit(server.url)
    host, port = url.hostname or "127.0.0.1", url.port or 443
    request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    answer = b""
    with (
        socket.create_connection((host, port), timeout=30) as raw,
        creds.ssl_context().wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(request.encode("ascii"))
        while part := tls.recv(65536):
            answer += part
    return answer


def test_a_100_kb_query_string_is_answered_in_the_error_shape(server: RunningServer) -> None:
    auditor = server.hub.add_agency("diwan", AgencyKind.auditor)
    answer = _exchange(server, auditor, "/v1/audit/entries?agency=" + "x" * 100_000)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"]["code"] == "malformed_request"
    # The same server, the same client: a query string of ordinary length is answered.
    ordinary = _exchange(server, auditor, "/v1/audit/entries?agency=" + "x" * 60)
    assert ordinary.startswith(b"HTTP/1.1 200 ")
