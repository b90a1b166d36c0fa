"""Snapshot segments: one committed snapshot's stored tokens in an immutable, checksummed,
sorted file that every process on the host maps (the file format, its writer and its verifier).

A committed snapshot's rows never change, so they can be written once beside the database and
shared through the page cache instead of being copied into every process. The database stays
the system of record: a file is trusted only after :func:`open_segment` has checked it against
what the database says the snapshot is (id, kind, row count, the random id of the upload that
made it, and the database's history, kit/epoch.py) and against its own checksum; anything else
is rebuilt from the database by the caller (uploads/segments.py).

Layout (all integers little-endian; every array 8-byte aligned)::

    header   64 bytes: magic "MHSEG02\\n", version (u32), kind (u32: 0 flag, 1 roster),
             snapshot id (u64), rows (u64), epoch system identifier (u64), epoch timeline
             (u64), the upload's id (16 bytes)
    body     the tokens' high 64 bits (u64 × rows), then their low 64 bits (u64 × rows),
             sorted by (high, low); a roster's ordinals (i32 × rows, then 0 or 4 zero bytes)
    trailer  XXH3-128 of header and body (16 bytes), then "MHSEGEND"

Tokens are the re-keyed stored tokens, 16 bytes read big-endian as two 64-bit halves, so the
numeric order of (high, low) is the byte order of the token. Nothing else is in a segment: no
wire token, no sealed token (a job's results read those from the database by ordinal).

A file is written under a temporary name in the same folder (mode 0600), fsynced, renamed into
place and the folder fsynced: a process killed mid-write leaves a temporary file that no
reader opens (and :func:`is_temporary` names for the sweep), never a half file under a
segment's name. A half file that got there anyway (a disk that lies) fails the checksum.

The checksum is XXH3-128, not a cryptographic hash, because what it guards against is accident
(a torn or partial file, a disk that lies, a write in place by mistake), and against that a
128-bit checksum is as good as SHA-256 at a tenth of the time: 0.08 s against 0.69 s for the
0.9 GB of a 7M x 50M hub, which every process that maps the segments pays at its start and a
fresh worker before its first job. Against someone who means it, no unkeyed hash helps: whoever
can write a segment can write its checksum, and the folder (0700, beside the database in the
state folder) is only writable by whoever could change the database itself.
"""

from __future__ import annotations

import mmap
import os
import secrets
import stat
import struct
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO

import numpy as np
import xxhash

TOKEN_BYTES = 16
MAGIC = b"MHSEG02\n"
END = b"MHSEGEND"
VERSION = 2  # 1 had a SHA-256 trailer; its files fail the header check and are rebuilt
_HEADER = struct.Struct("<8sIIQQQQ16s")
HEADER_BYTES = _HEADER.size  # 64
_DIGEST_BYTES = 16
TRAILER_BYTES = _DIGEST_BYTES + len(END)
SUFFIX = ".seg"
_TEMPORARY = ".tmp"
_BLOCK_ROWS = 1 << 20  # rows written, hashed or checked at a time
_HASH_BLOCK = 1 << 24  # bytes hashed at a time


class SegmentKind(IntEnum):
    flag = 0
    roster = 1


class SegmentInvalid(Exception):
    """The file is not a segment of the expected snapshot: missing, partial, corrupt, stale."""


class RowsDiffer(ValueError):
    """The database gave a segment build other than the rows its snapshot records: the
    snapshot was purged (or is being) since it was named. Nothing is written."""

    def __init__(self, found: int, expected: int) -> None:
        super().__init__(f"{found} tokens for a segment of {expected} rows")
        self.found, self.expected = found, expected


@dataclass(frozen=True)
class SegmentId:
    """What the database says a segment must hold; the file's header must say the same."""

    snapshot_id: int
    kind: SegmentKind
    rows: int
    upload: str  # the upload's id: 32 hex digits, random, so never reissued with other rows
    system: int = 0  # the database's history (kit/epoch.py); 0, 0 on SQLite
    timeline: int = 0

    @property
    def name(self) -> str:
        return f"{self.system}-{self.timeline}-{int(self.snapshot_id)}{SUFFIX}"

    def header(self) -> bytes:
        return _HEADER.pack(
            MAGIC,
            VERSION,
            int(self.kind),
            self.snapshot_id,
            self.rows,
            self.system,
            self.timeline,
            bytes.fromhex(self.upload),
        )

    def size(self) -> int:
        return HEADER_BYTES + self.rows * 16 + _ordinal_bytes(self) + TRAILER_BYTES


def parse_name(name: str) -> tuple[int, int, int] | None:
    """(system, timeline, snapshot id) of a segment's file name; None for any other name."""
    if not name.endswith(SUFFIX) or name.startswith("."):
        return None
    parts = name[: -len(SUFFIX)].split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    system, timeline, snapshot = (int(p) for p in parts)
    return system, timeline, snapshot


def is_temporary(name: str) -> int | None:
    """The id of the process writing a temporary segment file of this name, else None."""
    if not (name.startswith(".") and name.endswith(_TEMPORARY)):
        return None
    parts = name.split(".")
    return int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else None


def _ordinal_bytes(ident: SegmentId) -> int:
    if ident.kind is not SegmentKind.roster:
        return 0
    return ident.rows * 4 + (ident.rows % 2) * 4  # padded to 8 bytes


def halves(tokens: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The high and low 64 bits of each 16-byte token, as native unsigned integers."""
    if len(tokens) % TOKEN_BYTES:
        raise ValueError("stored tokens are 16 bytes each")
    words = np.frombuffer(tokens, dtype=">u8").reshape(-1, 2)
    return words[:, 0].astype(np.uint64), words[:, 1].astype(np.uint64)


def sort_order(hi: np.ndarray, lo: np.ndarray, ordinals: np.ndarray | None = None) -> np.ndarray:
    """The permutation that sorts by (high, low[, ordinal]). Tokens are uniform 128-bit values,
    so high halves almost never repeat: one sort of them, and the full sort only if they do."""
    order = np.argsort(hi)
    ranked = hi[order]
    if len(ranked) > 1 and bool(np.any(ranked[1:] == ranked[:-1])):
        keys = (lo, hi) if ordinals is None else (ordinals, lo, hi)
        order = np.lexsort(keys)
    return order


def write_segment(
    directory: Path, ident: SegmentId, tokens: bytes, ordinals: np.ndarray | None = None
) -> Path:
    """Write ``tokens`` (stored, 16 bytes each; with a roster's ``ordinals``) as the segment
    ``ident`` names, sorted; returns its path. Atomic: the segment's name appears only once
    the whole file is on disk."""
    hi, lo, ords, order = _columns(ident, tokens, ordinals)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = directory / ident.name
    temporary = directory / f".{ident.name}.{os.getpid()}.{secrets.token_hex(4)}{_TEMPORARY}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = xxhash.xxh3_128()
            _write_block(out, digest, ident.header())
            columns = [(hi, "<u8"), (lo, "<u8")] + ([] if ords is None else [(ords, "<i4")])
            for column, layout in columns:
                for start in range(0, ident.rows, _BLOCK_ROWS):
                    block = column[order[start : start + _BLOCK_ROWS]]
                    _write_block(out, digest, np.ascontiguousarray(block, dtype=layout).data)
            if ords is not None and ident.rows % 2:
                _write_block(out, digest, bytes(4))
            out.write(digest.digest() + END)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(directory)
    return final


def _columns(
    ident: SegmentId, tokens: bytes, ordinals: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """The halves, the ordinals (a roster's) and the order that sorts them."""
    hi, lo = halves(tokens)
    if len(hi) != ident.rows:
        raise RowsDiffer(len(hi), ident.rows)
    if (ordinals is None) != (ident.kind is not SegmentKind.roster):
        raise ValueError("a roster's segment has ordinals, a flag's has none")
    ords = None if ordinals is None else np.asarray(ordinals, dtype="<i4")
    return hi, lo, ords, sort_order(hi, lo, ords)


def in_memory(ident: SegmentId, tokens: bytes, ordinals: np.ndarray | None = None) -> Segment:
    """The segment ``write_segment`` would write, as this process's own arrays: for when the
    folder cannot be written (a full disk), so readers carry on from the database's rows."""
    hi, lo, ords, order = _columns(ident, tokens, ordinals)
    hi, lo = hi[order], lo[order]
    return Segment(ident, hi, lo, None if ords is None else ords[order], None, order_of(hi, lo))


def _write_block(out: BinaryIO, digest: xxhash.xxh3_128, data: bytes | memoryview) -> None:
    out.write(data)
    digest.update(data)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


FileIdentity = tuple[int, int, int, int, int]  # device, inode, size, mtime and ctime (ns)


def file_identity(status: os.stat_result) -> FileIdentity:
    """What changes when a file is replaced or written in place (through the file system)."""
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


@dataclass(frozen=True)
class Segment:
    """A verified segment, mapped: read-only arrays over the page cache, shared by every
    process that maps the same file. ``identity`` is the file's as it was verified (None for
    :func:`in_memory`'s arrays): a file that no longer has it has been written in place or
    replaced since, and its map is no longer what was checked."""

    ident: SegmentId
    hi: np.ndarray  # uint64, sorted
    lo: np.ndarray  # uint64, sorted within equal ``hi``
    ordinals: np.ndarray | None  # int32, a roster's
    identity: FileIdentity | None = None
    order: Order | None = None  # what the check of its order found (None: not checked)


def open_segment(path: Path, expected: SegmentId) -> Segment:
    """Map the segment at ``path`` if it is exactly what ``expected`` describes and whole:
    its size, its header, its checksum and its order. Raises :class:`SegmentInvalid`."""
    try:
        # Never waits on a FIFO, never follows a link: only a regular file is a segment.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:  # none, a link, or a folder that is not one
        raise SegmentInvalid(f"cannot open it: {exc.strerror}") from exc
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise SegmentInvalid("not a regular file")
        size = status.st_size
        if size != expected.size():
            raise SegmentInvalid(f"size {size}, expected {expected.size()}")
        mapped = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    view = memoryview(mapped)
    if bytes(view[:HEADER_BYTES]) != expected.header():
        raise SegmentInvalid("header is not the expected snapshot's")
    end = size - TRAILER_BYTES
    if bytes(view[end + _DIGEST_BYTES :]) != END:
        raise SegmentInvalid("no trailer")
    digest = xxhash.xxh3_128()
    for start in range(0, end, _HASH_BLOCK):
        digest.update(view[start : min(end, start + _HASH_BLOCK)])
    if digest.digest() != bytes(view[end : end + _DIGEST_BYTES]):
        raise SegmentInvalid("checksum does not match")
    n = expected.rows
    hi = np.frombuffer(mapped, dtype="<u8", count=n, offset=HEADER_BYTES)
    lo = np.frombuffer(mapped, dtype="<u8", count=n, offset=HEADER_BYTES + 8 * n)
    ordinals = None
    if expected.kind is SegmentKind.roster:
        ordinals = np.frombuffer(mapped, dtype="<i4", count=n, offset=HEADER_BYTES + 16 * n)
    order = order_of(hi, lo)
    if not order.ascending:
        raise SegmentInvalid("tokens are not in order")
    return Segment(expected, hi, lo, ordinals, file_identity(status), order)


@dataclass(frozen=True)
class Order:
    """How a column of tokens is ordered, as the match engine needs to know it."""

    ascending: bool  # by (high, low)
    plain: bool  # no high half twice
    distinct: bool  # no token twice


def order_of(hi: np.ndarray, lo: np.ndarray) -> Order:
    """One pass over the columns, a block at a time (a segment's maps can be gigabytes, and
    a pass over all of them at once would make temporaries as large)."""
    plain = distinct = True
    pairs = max(len(hi) - 1, 0)  # (i, i + 1) for every i below this
    for start in range(0, pairs, _BLOCK_ROWS):
        stop = min(pairs, start + _BLOCK_ROWS)
        a, b = hi[start:stop], hi[start + 1 : stop + 1]
        if bool(np.any(b < a)):
            return Order(ascending=False, plain=False, distinct=False)
        ties = np.flatnonzero(b == a) + start
        if len(ties):
            plain = False
            if bool(np.any(lo[ties + 1] < lo[ties])):
                return Order(ascending=False, plain=False, distinct=False)
            distinct = distinct and not bool(np.any(lo[ties + 1] == lo[ties]))
    return Order(ascending=True, plain=plain, distinct=distinct)
