"""The two chunk formats, parsed and checked line by line.

``application/x-ndjson``
    One JSON object per line: ``{"token": "<64 lowercase hex>", "flags": ["bank.large_loan"]}``.
    A roster line has no ``flags`` (or an empty list).
``application/vnd.matchhub.rows+binary`` (compact, for speed)
    Fixed-width rows: the 32 raw bytes of the wire token, then ``ceil(F / 8)`` bytes of flag
    bits, where F is the number of flags the upload declared and bit ``i`` (least significant
    bit of byte ``i // 8`` first) stands for the upload's ``flags[i]``. A roster row is the 32
    token bytes alone.

Errors name the line (row) number, never its content: a bad line may hold an identifier.

A commit names what was sent by :func:`chunks_digest`: the SHA-256 over the chunks' own SHA-256
digests (32 bytes each) in sequence order. Each chunk's digest is all the broker keeps of it, so
any broker process can check a commit whichever processes took the chunks.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from matchhub.protocol.tokens import TOKEN_BYTES, TOKEN_LENGTH, looks_like_raw_identifier

NDJSON = "application/x-ndjson"
COMPACT = "application/vnd.matchhub.rows+binary"
FORMATS = (NDJSON, COMPACT)

_TOKEN = re.compile(f"[0-9a-f]{{{TOKEN_LENGTH}}}")
WIRE_TOKEN_BYTES = TOKEN_BYTES


def chunks_digest(chunk_digests: Iterable[bytes]) -> str:
    """The commit's ``chunks_sha256``: hex SHA-256 over the raw 32-byte SHA-256 of each chunk
    body, concatenated in sequence order (chunk 0 first)."""
    digest = hashlib.sha256()
    for one in chunk_digests:
        if len(one) != hashlib.sha256().digest_size:
            raise ValueError("a chunk digest is the 32 raw bytes of a SHA-256")
        digest.update(one)
    return digest.hexdigest()


@dataclass(frozen=True)
class Row:
    token: bytes  # 32 raw bytes of the wire token; never stored, never logged
    flags: int  # bit i set: the upload's flags[i]


class ChunkError(ValueError):
    """A chunk that breaks the format: ``code`` is the broker's stable error code, ``line``
    the row it was found on (never the row's content)."""

    def __init__(self, message: str, code: str, line: int | None = None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.code, self.line = code, line


@dataclass(frozen=True)
class Columns:
    """A parsed chunk as columns: the wire tokens concatenated (32 bytes each, never stored,
    never logged) and, per row, the bits of the upload's declared flags."""

    tokens: bytes
    masks: np.ndarray  # uint64, one per row

    def __len__(self) -> int:
        return len(self.tokens) // WIRE_TOKEN_BYTES


def parse(body: bytes, media_type: str, declared: Sequence[str], roster: bool) -> Columns:
    if media_type == NDJSON:
        rows = list(_ndjson(body, declared, roster))
        return Columns(
            b"".join(r.token for r in rows),
            np.fromiter((r.flags for r in rows), dtype=np.uint64, count=len(rows)),
        )
    if media_type == COMPACT:
        return _compact_columns(body, len(declared), roster)
    raise ChunkError(
        f"chunk Content-Type must be one of {', '.join(FORMATS)}", "unsupported_format"
    )


def _compact_columns(body: bytes, flag_count: int, roster: bool) -> Columns:
    """The compact format, checked and split without a Python loop over rows."""
    mask_bytes = 0 if roster else (flag_count + 7) // 8
    width = WIRE_TOKEN_BYTES + mask_bytes
    if len(body) % width:
        raise ChunkError(
            f"the body is not a whole number of {width}-byte rows",
            "malformed_line",
            len(body) // width + 1,
        )
    table = np.frombuffer(body, dtype=np.uint8).reshape(-1, width)
    if roster:
        return Columns(body, np.zeros(len(table), dtype=np.uint64))
    padded = np.zeros((len(table), 8), dtype=np.uint8)
    padded[:, :mask_bytes] = table[:, WIRE_TOKEN_BYTES:]
    masks = padded.view("<u8").ravel().astype(np.uint64)
    empty = np.flatnonzero(masks == 0)
    if len(empty):
        raise ChunkError(
            "a snapshot row carries at least one flag", "line_without_flags", int(empty[0]) + 1
        )
    beyond = np.flatnonzero(masks & ~np.uint64((1 << flag_count) - 1))
    if len(beyond):
        raise ChunkError(
            "a flag bit beyond the declared flags is set", "flag_not_declared", int(beyond[0]) + 1
        )
    return Columns(np.ascontiguousarray(table[:, :WIRE_TOKEN_BYTES]).tobytes(), masks)


def _ndjson(body: bytes, declared: Sequence[str], roster: bool) -> Iterator[Row]:
    bit_of = {code: 1 << i for i, code in enumerate(declared)}
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        token, flags = _line(line, number)
        if roster:
            if flags:
                raise ChunkError("a roster line carries no flags", "roster_line_has_flags", number)
            yield Row(token, 0)
            continue
        mask = 0
        for code in flags:
            bit = bit_of.get(code)
            if bit is None:
                raise ChunkError(
                    f"flag {code!r} was not declared when the upload was opened",
                    "flag_not_declared",
                    number,
                )
            mask |= bit
        if not mask:
            raise ChunkError(
                "a snapshot line carries at least one flag", "line_without_flags", number
            )
        yield Row(token, mask)


def _line(line: bytes, number: int) -> tuple[bytes, list[str]]:
    """One NDJSON line → (32 token bytes, flag codes), or a :class:`ChunkError`."""
    try:
        item = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; nesting too deep
        raise ChunkError("not a JSON object", "malformed_line", number) from None
    if not isinstance(item, dict):
        raise ChunkError("not a JSON object", "malformed_line", number)
    token = item.get("token")
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        if looks_like_raw_identifier(token):
            raise ChunkError(
                "this looks like a raw identifier; the broker never accepts one, only "
                "keyed-hash tokens (connectors/TOKEN-SPEC.md)",
                "raw_identifier_refused",
                number,
            )
        raise ChunkError(
            f"token must be {TOKEN_LENGTH} lowercase hex characters", "invalid_token", number
        )
    extra = set(item) - {"token", "flags"}
    if extra:
        raise ChunkError(f"unexpected field(s) {sorted(extra)}", "malformed_line", number)
    flags = item.get("flags") or []
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise ChunkError("flags must be a list of flag codes", "malformed_line", number)
    return bytes.fromhex(token), flags


def encode_compact(rows: Sequence[tuple[bytes, int]], flag_count: int, roster: bool) -> bytes:
    """The client side of the compact format (used by the push client and the tests)."""
    mask_bytes = 0 if roster else (flag_count + 7) // 8
    return b"".join(token + mask.to_bytes(mask_bytes, "little") for token, mask in rows)
