"""The push client: open an upload, stream chunks in order, commit with count and digest.

Retries are the client's transport's (client.py :class:`RetryingTransport`): every request
here may be sent twice without doing anything twice. The open carries an ``Idempotency-Key``
(a repeat answers the upload the first opened), the broker takes a repeated chunk once, and a
repeated commit with the same rows and digest answers the committed upload. Resume: given an
upload id, the client asks the broker which chunk it expects next (``next_seq``) and continues
from there, whichever broker process answers; a chunk the broker says is out of order (another
run of the upload moved it on) restarts from there, at most ``MAX_RESENDS`` times. The commit
carries ``chunks_sha256`` (protocol/wire.py: the SHA-256 over each chunk's own SHA-256), which
any broker process can check.

Making a chunk (reading, normalising and hashing its rows) and sending one overlap: the next
chunk is made in a thread while the one before it is on the wire and at the broker, so a
connector with two cores hashes while the broker ingests, instead of each waiting for the
other (docs/benchmarks.md, the whole path). Chunks are still made and sent one at a time and
in order; at most one chunk is made ahead.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from matchhub.agency.connector.client import IDEMPOTENT
from matchhub.protocol.wire import COMPACT, NDJSON, chunks_digest, encode_compact

MAX_RESENDS = 3
"""How many times a push starts again from the broker's ``next_seq`` after a
``chunk_out_of_order`` before it gives up."""


class PushError(Exception):
    """The broker refused the push; ``code`` is its stable error code."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details


@dataclass
class PushResult:
    upload: dict[str, Any]
    rows: int
    chunks: int
    sha256: str  # of the bodies concatenated: the report's fingerprint of what was sent
    chunks_sha256: str  # what the commit carries
    seconds: float = 0.0


@dataclass
class Chunk:
    seq: int
    body: bytes
    rows: int


@dataclass
class PushClient:
    client: httpx.Client

    def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        response = self.client.request(method, url, **kwargs)
        body: dict[str, Any] = response.json() if response.content else {}
        if response.status_code >= 400:
            error = body.get("error", {})
            raise PushError(
                response.status_code,
                error.get("code", "http_error"),
                error.get("message", response.text),
                error.get("details"),
            )
        return body

    def open(
        self,
        kind: str,
        key_version: str,
        flags: Sequence[str],
        expected_rows: int,
        as_of: date | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Open an upload; ``idempotency_key`` (default: a fresh one) makes a retry of this
        very request answer the same upload."""
        payload: dict[str, Any] = {
            "kind": kind,
            "key_version": key_version,
            "flags": list(flags),
            "expected_rows": expected_rows,
        }
        if as_of:
            payload["as_of"] = as_of.isoformat()
        return self._json(
            "POST",
            "/v1/uploads",
            json=payload,
            headers={"idempotency-key": idempotency_key or secrets.token_hex(16)},
            extensions={IDEMPOTENT: True},
        )

    def status(self, upload_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/uploads/{upload_id}")

    def put(self, upload_id: str, chunk: Chunk, media_type: str) -> dict[str, Any]:
        return self._json(
            "PUT",
            f"/v1/uploads/{upload_id}/chunks/{chunk.seq}",
            content=chunk.body,
            headers={"content-type": media_type},
        )

    def commit(
        self,
        upload_id: str,
        rows: int,
        chunks_sha256: str | None = None,
        *,
        sha256: str | None = None,
    ) -> dict[str, Any]:
        """Commit with the digest any broker process checks (``chunks_sha256``); ``sha256``,
        the first form, is for tests of the brokers that still accept it."""
        body: dict[str, Any] = {"rows": rows}
        if chunks_sha256 is not None:
            body["chunks_sha256"] = chunks_sha256
        if sha256 is not None:
            body["sha256"] = sha256
        return self._json(
            "POST", f"/v1/uploads/{upload_id}/commit", json=body, extensions={IDEMPOTENT: True}
        )

    def abort(self, upload_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/v1/uploads/{upload_id}")

    def send(
        self,
        upload_id: str,
        chunks: Callable[[], Iterator[Chunk]],
        media_type: str,
        rows: int,
        *,
        on_chunk: Callable[[Chunk], None] | None = None,
        resends: int = MAX_RESENDS,
    ) -> PushResult:
        """Send every chunk from where the broker stands, then commit. ``chunks`` is a factory
        so that a resume after a broker restart can read the data again from the start."""
        started = time.monotonic()
        digest, count = hashlib.sha256(), 0
        each: list[bytes] = []
        next_seq = int(self.status(upload_id)["next_seq"])
        for chunk in made_ahead(chunks()):
            digest.update(chunk.body)
            each.append(hashlib.sha256(chunk.body).digest())
            count += 1
            if chunk.seq < next_seq:
                continue
            try:
                receipt = self.put(upload_id, chunk, media_type)
            except PushError as exc:
                if exc.code != "chunk_out_of_order" or resends <= 0:
                    raise
                # Another run of this upload moved the broker on: continue from where it is.
                return self.send(
                    upload_id, chunks, media_type, rows, on_chunk=on_chunk, resends=resends - 1
                )
            next_seq = int(receipt["next_seq"])
            if on_chunk:
                on_chunk(chunk)
        combined = chunks_digest(each)
        upload = self.commit(upload_id, rows, combined)
        return PushResult(
            upload,
            rows,
            count,
            digest.hexdigest(),
            combined,
            time.monotonic() - started,
        )


def made_ahead(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """The chunks in order, each next one made in a worker thread while the caller sends the
    one before. The worker alone advances ``chunks``, one step at a time; an error making a
    chunk is raised here, where that chunk would have come."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="matchhub-chunks") as worker:
        ahead = worker.submit(next, chunks, None)
        while (chunk := ahead.result()) is not None:
            ahead = worker.submit(next, chunks, None)
            yield chunk


def ndjson_chunks(
    rows: Iterable[tuple[str, Sequence[str]]], chunk_rows: int, roster: bool
) -> Iterator[Chunk]:
    """Rows of (hex token, flag codes) as NDJSON chunks of ``chunk_rows`` lines."""
    lines: list[bytes] = []
    seq = 0
    for token, flags in rows:
        item: dict[str, Any] = (
            {"token": token} if roster else {"token": token, "flags": list(flags)}
        )
        lines.append(json.dumps(item, separators=(",", ":")).encode() + b"\n")
        if len(lines) == chunk_rows:
            yield Chunk(seq, b"".join(lines), len(lines))
            seq, lines = seq + 1, []
    if lines:
        yield Chunk(seq, b"".join(lines), len(lines))


def compact_chunks(
    rows: Iterable[tuple[str, Sequence[str]]],
    declared: Sequence[str],
    chunk_rows: int,
    roster: bool,
) -> Iterator[Chunk]:
    bit = {code: 1 << i for i, code in enumerate(declared)}
    batch: list[tuple[bytes, int]] = []
    seq = 0
    for token, flags in rows:
        mask = 0
        for code in flags:
            mask |= bit[code]
        batch.append((bytes.fromhex(token), mask))
        if len(batch) == chunk_rows:
            yield Chunk(seq, encode_compact(batch, len(declared), roster), len(batch))
            seq, batch = seq + 1, []
    if batch:
        yield Chunk(seq, encode_compact(batch, len(declared), roster), len(batch))


FORMATS = {"ndjson": NDJSON, "compact": COMPACT}


def push(
    client: httpx.Client,
    *,
    kind: str,
    key_version: str,
    flags: Sequence[str],
    rows: Sequence[tuple[str, Sequence[str]]],
    chunk_rows: int = 50_000,
    fmt: str = "compact",
    as_of: date | None = None,
) -> PushResult:
    """Push rows already in memory: open, send, commit."""
    pusher = PushClient(client)
    roster = kind == "roster"
    upload = pusher.open(kind, key_version, flags, len(rows), as_of)

    def chunks() -> Iterator[Chunk]:
        if fmt == "ndjson":
            return ndjson_chunks(rows, chunk_rows, roster)
        return compact_chunks(rows, flags, chunk_rows, roster)

    return pusher.send(upload["id"], chunks, FORMATS[fmt], len(rows))
