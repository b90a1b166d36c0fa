"""The connector client's one retrying transport, and the push client's bounded resend, through
httpx.MockTransport (a real broker dropping a commit's answer: tests/connect/test_push.py)."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from matchhub.agency.connector.client import IDEMPOTENT, RetryingTransport
from matchhub.agency.connector.push import MAX_RESENDS, Chunk, PushClient, PushError

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler) -> tuple[httpx.Client, RetryingTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    transport = RetryingTransport(httpx.MockTransport(record), attempts=4, sleep=lambda _s: None)
    return httpx.Client(base_url="https://broker.test", transport=transport), transport, seen


def _unwell_then_fine(failures: int) -> Handler:
    """503 to the first ``failures`` requests, then 200."""
    calls = 0

    def handle(_request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls <= failures:
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "x"}})
        return httpx.Response(200, json={"ok": True})

    return handle


def test_safe_requests_are_retried_and_a_plain_post_is_sent_once() -> None:
    client, transport, seen = _client(_unwell_then_fine(2))
    assert client.get("/v1/whoami").status_code == 200
    assert len(seen) == 3
    assert transport.retries == 2

    client, _, seen = _client(_unwell_then_fine(2))
    assert client.post("/v1/lookups", json={}).status_code == 503  # a lookup: not marked
    assert len(seen) == 1

    client, _, seen = _client(_unwell_then_fine(2))
    marked = client.post("/v1/uploads/x/commit", json={}, extensions={IDEMPOTENT: True})
    assert marked.status_code == 200
    assert len(seen) == 3

    client, _, seen = _client(_unwell_then_fine(10))  # bounded: attempts, then the last answer
    assert client.get("/v1/whoami").status_code == 503
    assert len(seen) == 4


def test_a_lost_answer_is_retried_but_a_refused_handshake_is_not() -> None:
    def lost(request: httpx.Request) -> httpx.Response:
        if len(seen) == 1:
            raise httpx.ReadError("connection closed before the answer", request=request)
        return httpx.Response(200, json={"state": "committed"})

    client, _, seen = _client(lost)
    answer = client.post("/v1/uploads/x/commit", json={}, extensions={IDEMPOTENT: True})
    assert answer.json() == {"state": "committed"}
    assert len(seen) == 2

    def refused(request: httpx.Request) -> httpx.Response:
        try:
            raise ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] alert")
        except ssl.SSLError as exc:
            exc.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
            raise httpx.ConnectError("handshake", request=request) from exc

    client, _, seen = _client(refused)
    with pytest.raises(httpx.ConnectError):
        client.get("/v1/whoami")
    assert len(seen) == 1


def test_the_resend_on_chunk_out_of_order_is_bounded() -> None:
    """A broker that keeps saying "out of order" (another run racing this one, or a broken
    proxy) ends the push with the refusal after MAX_RESENDS restarts, not in a loop."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"next_seq": 0})
        error = {"code": "chunk_out_of_order", "message": "expected chunk 1"}
        return httpx.Response(409, json={"error": error})

    client, _, seen = _client(handle)
    pusher = PushClient(client)
    chunks = [Chunk(0, b"a", 1), Chunk(1, b"b", 1)]
    with pytest.raises(PushError) as caught:
        pusher.send("u" * 32, lambda: iter(chunks), "application/x-ndjson", 2)
    assert caught.value.code == "chunk_out_of_order"
    puts = [r for r in seen if r.method == "PUT"]
    assert len(puts) == MAX_RESENDS + 1
    assert not [r for r in seen if r.method == "POST"]  # never committed


def test_an_open_carries_an_idempotency_key_that_its_retries_repeat() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if len(seen) == 1:
            raise httpx.ReadError("lost", request=request)
        return httpx.Response(201, json={"id": "a" * 32, **json.loads(request.content)})

    client, _, seen = _client(handle)
    PushClient(client).open("flags", "v1", ["bank.large_loan"], 3)
    keys = [r.headers["idempotency-key"] for r in seen]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert len(keys[0]) == 32


def test_the_next_chunk_is_made_while_one_is_sent_and_in_order() -> None:
    """Chunk n+1 is made (hashed) while chunk n is on the wire, in another thread, one ahead
    at most; they are sent in order, and an error making one stops the push there, uncommitted."""
    made: list[int] = []
    made_during_put: list[list[int]] = []

    def chunks() -> Iterator[Chunk]:
        for seq in range(3):
            made.append(seq)
            yield Chunk(seq, bytes([seq]), 1)
        raise ValueError("row 4 of the extract")

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            seq = int(request.url.path.rsplit("/", 1)[1])
            deadline = time.monotonic() + 5
            while len(made) < min(seq + 2, 3) and time.monotonic() < deadline:
                time.sleep(0.001)  # the next chunk is being made meanwhile
            made_during_put.append(list(made))
            return httpx.Response(200, json={"next_seq": seq + 1})
        return httpx.Response(200, json={"next_seq": 0})

    client, _, seen = _client(handle)
    with pytest.raises(ValueError, match="row 4"):
        PushClient(client).send("u" * 32, chunks, "application/x-ndjson", 3)
    assert made_during_put == [[0, 1], [0, 1, 2], [0, 1, 2]]
    assert [r.content for r in seen if r.method == "PUT"] == [b"\x00", b"\x01", b"\x02"]
    assert not [r for r in seen if r.method == "POST"]  # never committed
