"""Slow and idle senders against the real server (web/server.py, web/gate.py): they hold no
admission slot, honest callers keep being answered, and each is cut off after its configured
time, a half-done TLS handshake included.

Every wait here is a socket read bounded by a timeout several times the configured limit; the
test asserts what the server did (an answer, a close), never how long it took."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest

from matchhub.agency.connector.client import AgencyCredentials
from matchhub.keystore import pki
from matchhub.protocol.kinds import AgencyKind
from tests import pki as test_pki
from tests.conftest import RunningServer

LIMITS = {
    "request_concurrency": 2,
    "tls_handshake_seconds": 1.0,
    "request_header_seconds": 1.0,
    "request_idle_seconds": 1.0,
    "request_body_seconds": 3.0,
}
PATIENCE = 15.0  # a socket read waits at most this long for the server to act
LOOKUP = b'{"purpose": "eligibility_review", "tokens": []}'
HONEST = {"purpose": "eligibility_review", "tokens": []}
CLIENT_HELLO_BEGUN = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


def _address(server: RunningServer) -> tuple[str, int]:
    url = urlsplit(server.url)
    assert url.hostname is not None
    assert url.port is not None
    return url.hostname, url.port


def _tls(server: RunningServer, creds: AgencyCredentials) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(creds.ca))
    context.load_cert_chain(creds.certificate, creds.key)
    raw = socket.create_connection(_address(server), timeout=PATIENCE)
    return context.wrap_socket(raw, server_hostname="localhost")


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a read that times out
    fails the test)."""
    received = b""
    while True:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            return received
        if not data:
            return received
        received += data


def _lookup_header(length: int) -> bytes:
    return (
        b"POST /v1/lookups HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        + b"Content-Length: %d\r\n\r\n" % length
    )


@pytest.fixture
def slow_senders(server: RunningServer) -> Iterator[list[ssl.SSLSocket]]:
    """Twenty connections of a registered consumer, each having sent a lookup's header and
    the first byte of a body it never finishes: before the gate, two of them held both
    admission slots."""
    creds = server.hub.add_agency("slowpoke", AgencyKind.welfare)
    with ExitStack() as stack:
        senders = []
        for _ in range(20):
            sock = stack.enter_context(_tls(server, creds))
            sock.sendall(_lookup_header(len(LOOKUP)) + LOOKUP[:1])
            senders.append(sock)
        yield senders


@pytest.mark.settings(**LIMITS)
def test_slow_senders_hold_no_slot_and_are_cut_off(
    server: RunningServer, slow_senders: list[ssl.SSLSocket]
) -> None:
    server.hub.add_agency("molsa", AgencyKind.welfare)
    with server.client("molsa") as honest:
        for _ in range(10):
            answer = honest.post("/v1/lookups", json=HONEST, timeout=PATIENCE)
            assert answer.status_code == 200, answer.text
    for sock in slow_senders:
        refused = _until_closed(sock)
        assert refused.startswith(b"HTTP/1.1 408"), refused[:80]
        assert b'"body_timeout"' in refused


@pytest.mark.settings(**LIMITS)
def test_idle_and_half_sent_connections_are_closed(server: RunningServer) -> None:
    creds = server.hub.add_agency("molsa", AgencyKind.welfare)
    ghost = test_pki.write_credentials(
        server.hub.agencies_dir / "ghost",
        "ghost",
        pki.issue_client(server.hub.ca, server.hub.settings.hub_name, "ghost", "TEST-ONLY"),
        server.hub.ca_pem,
    )
    with ExitStack() as stack:
        idle = stack.enter_context(_tls(server, creds))  # handshake done, then nothing
        half_header = stack.enter_context(_tls(server, ghost))
        half_header.sendall(b"POST /v1/lookups HTTP/1.1\r\nHost: local")
        after_answer = stack.enter_context(_tls(server, creds))
        after_answer.sendall(b"GET /v1/whoami HTTP/1.1\r\nHost: localhost\r\n\r\nGET /v1/who")
        no_handshake = stack.enter_context(socket.create_connection(_address(server), PATIENCE))
        half_handshake = stack.enter_context(socket.create_connection(_address(server), PATIENCE))
        half_handshake.sendall(CLIENT_HELLO_BEGUN)
        assert _until_closed(idle) == b""
        assert _until_closed(half_header) == b""
        answered = _until_closed(after_answer)
        assert answered.startswith(b"HTTP/1.1 200")  # the first request answered, then cut off
        assert answered.count(b"HTTP/1.1") == 1
        assert _until_closed(no_handshake) == b""
        assert _until_closed(half_handshake) == b""
    # And the server still serves a client that behaves.
    with server.client("molsa") as client:
        assert client.get("/v1/whoami").status_code == 200
