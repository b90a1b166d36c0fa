"""The host's snapshot segments (kit/segments.py): which file holds which snapshot, built from
the database when missing or untrustworthy, and swept when their snapshot is gone.

A segment is named by the snapshot id and the database's history (kit/epoch.py: system
identifier and timeline), and its header also names the snapshot's kind, row count and the
random id of the upload that made it. A process trusts a file only after checking all of that
against the database's own record of the snapshot, and the file's checksum and order; a
missing, partial, corrupt or stale file is rebuilt from the database (uploads/repository.py
``SnapshotRows``), never used. So a restored or failed-over database (another history, ids
issued again) never meets a file of the old one, and neither does a SQLite file restored in
place (its uploads' ids differ).

What may be served is still decided by the database: the lookup view serves only the snapshots
current at the generation it records, the match engine only those a job's plan names. A
segment only saves reading the rows.

Each process keeps the segments it has verified, mapped (a map is shared page cache, not a
copy), with the file's identity as verified (device, inode, size, modification and change
times). A segment is never written in place; one that was anyway (an operator's ``cp`` over
it, ``rsync --inplace``) no longer has that identity, and :meth:`SegmentStore.changed` names
it, so the lookup view and the match engine let go of their maps of it and check the file
again (the view at its next poll, the engine before its next job). A file truncated under a
live map cannot be guarded against by a reader: the process touching the lost pages is
killed (SIGBUS); docs/operator.md says never to edit the folder.

Builds of one segment by several processes of a host are serialised by a lock file beside
it, so the second finds the first's file. The sweep removes the files of snapshots that are
no longer current (a replaced snapshot's segment goes with its rows), of unknown snapshots
and of another history, and temporary files whose writer is dead (a kill -9 mid-write).
"""

from __future__ import annotations

import fcntl
import os
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog
from sqlalchemy.orm import Session

from matchhub.kit.epoch import Epoch
from matchhub.kit.segments import (
    HEADER_BYTES,
    Segment,
    SegmentId,
    SegmentInvalid,
    SegmentKind,
    file_identity,
    in_memory,
    is_temporary,
    open_segment,
    parse_name,
    write_segment,
)
from matchhub.uploads.repository import SnapshotRepository, SnapshotRows

log = structlog.get_logger("matchhub.segments")

_LOCK = ".lock"


@dataclass(frozen=True)
class SnapshotRef:
    """What the database says of a snapshot a segment is asked for."""

    id: int
    kind: str  # flag | roster
    rows: int
    upload_id: str


class SegmentStore:
    def __init__(self, directory: Path, epoch: Callable[[], Epoch | None] = lambda: None) -> None:
        self.directory = directory
        self._epoch = epoch
        self._open: dict[str, Segment] = {}  # verified and mapped, by file name
        self._lock = threading.Lock()
        self.built = 0  # segments this process wrote (metrics, tests)
        self.rejected = 0  # files found and not trusted

    def ident(self, ref: SnapshotRef) -> SegmentId:
        epoch = self._epoch()
        return SegmentId(
            snapshot_id=int(ref.id),
            kind=SegmentKind.roster if ref.kind == "roster" else SegmentKind.flag,
            rows=int(ref.rows),
            upload=ref.upload_id,
            system=epoch.system if epoch else 0,
            timeline=epoch.timeline if epoch else 0,
        )

    def path(self, ref: SnapshotRef) -> Path:
        return self.directory / self.ident(ref).name

    def segment(self, session: Session, ref: SnapshotRef) -> Segment:
        """The snapshot's segment, verified and mapped; built from ``session``'s database
        first if there is no trustworthy one."""
        ident = self.ident(ref)
        path = self.directory / ident.name
        with self._lock:
            held = self._open.get(ident.name)
        if held is not None and held.ident == ident:
            if _unchanged(path, held):
                return held
            log.warning("segment changed on disk after it was checked", snapshot=ref.id)
            self.release({ref.id})
        try:
            segment = open_segment(path, ident)
        except SegmentInvalid as why:
            there = path.exists()
            if there:
                self.rejected += 1
                log.warning("segment not trusted; rebuilding it", snapshot=ref.id, reason=str(why))
            try:
                # A file that was there is rebuilt whatever the lock finds; a missing one may
                # have been built by another process meanwhile.
                self._build(session, ref, ident, force=there)
                segment = open_segment(path, ident)
            except OSError:  # the folder cannot be written: carry on from the database
                log.error("cannot write segments; reading rows instead", exc_info=True)
                segment = in_memory(ident, *self._rows(session, ref, ident))
        with self._lock:
            self._open[ident.name] = segment
        return segment

    def refs(self, session: Session, snapshot_ids: list[int]) -> dict[int, SnapshotRef]:
        return {
            int(r.id): SnapshotRef(int(r.id), r.kind, int(r.rows), r.upload_id)
            for r in SnapshotRepository(session).segment_refs(snapshot_ids)
        }

    def prepare(self, session: Session) -> int:
        """Build the segment of every current snapshot that has none on this host (the
        background work does it right after commits, so readers seldom wait for a build).
        A file that is there is fully checked by whoever reads it; here only its size and
        header. Returns how many were built."""
        built = 0
        for r in SnapshotRepository(session).current_refs():
            ref = SnapshotRef(int(r.id), r.kind, int(r.rows), r.upload_id)
            ident = self.ident(ref)
            if not _plausible(self.directory / ident.name, ident):
                try:
                    built += self._build(session, ref, ident, force=False)
                except OSError:  # one that cannot be written (say a folder under its name)
                    log.error("cannot write a segment", snapshot=ref.id, exc_info=True)
        return built

    def changed(self, mapped: Mapping[int, Segment]) -> set[int]:
        """Of the segments a reader maps (by snapshot id), those whose file is no longer the
        one that was verified: written in place, replaced, or gone."""
        return {
            snapshot_id
            for snapshot_id, segment in mapped.items()
            if not _unchanged(self.directory / segment.ident.name, segment)
        }

    def release(self, snapshot_ids: set[int]) -> None:
        """Let go of this process's maps of these snapshots (others may still hold theirs)."""
        with self._lock:
            for name in [n for n, s in self._open.items() if s.ident.snapshot_id in snapshot_ids]:
                del self._open[name]

    def restored(self) -> None:
        """The database is another history (kit/epoch.py): forget every map."""
        with self._lock:
            self._open.clear()

    def sweep(self, session: Session) -> int:
        """Remove the files no reader may use: segments of snapshots that are not current
        (replaced, purged, unknown) or of another history, their lock files, and temporary
        files whose writer is gone. Returns how many files were removed."""
        if not self.directory.is_dir():
            return 0
        epoch = self._epoch()
        here = (epoch.system, epoch.timeline) if epoch else (0, 0)
        names = [p.name for p in self.directory.iterdir()]
        ours: dict[str, int] = {}
        doomed: list[str] = []
        for name in names:
            parsed = parse_name(name)
            if parsed is not None:
                if (parsed[0], parsed[1]) == here:
                    ours[name] = parsed[2]
                else:
                    doomed.append(name)
            elif (writer := is_temporary(name)) is not None and not _alive(writer):
                doomed.append(name)
        # A lock file stays while its snapshot is current, whether or not its segment is
        # there yet: it may be held by a process building the segment for the first time.
        locks: dict[str, int | None] = {}
        for name in names:
            if name.startswith(".") and name.endswith(_LOCK):
                parsed = parse_name(name[1 : -len(_LOCK)])
                mine = parsed is not None and (parsed[0], parsed[1]) == here
                locks[name] = parsed[2] if parsed is not None and mine else None
        known = set(ours.values()) | {s for s in locks.values() if s is not None}
        current = SnapshotRepository(session).current_among(known)
        doomed += [name for name, snapshot in ours.items() if snapshot not in current]
        doomed += [name for name, snapshot in locks.items() if snapshot not in current]
        for name in doomed:
            (self.directory / name).unlink(missing_ok=True)
        if doomed:
            log.info("segments swept", files=len(doomed))
        return len(doomed)

    def _build(self, session: Session, ref: SnapshotRef, ident: SegmentId, *, force: bool) -> int:
        """Write the segment from the database; 0 if another process of the host has just
        written one (and ``force`` is off), else 1."""
        path = self.directory / ident.name
        with self._building(ident.name):
            if not force and _plausible(path, ident):
                return 0
            write_segment(self.directory, ident, *self._rows(session, ref, ident))
            self.built += 1
            log.info("segment built", snapshot=ref.id, rows=ref.rows)
            return 1

    @staticmethod
    def _rows(
        session: Session, ref: SnapshotRef, ident: SegmentId
    ) -> tuple[bytes, np.ndarray | None]:
        """The snapshot's stored tokens, and a roster's ordinals, from the database."""
        rows = SnapshotRows(session)
        if ident.kind is SegmentKind.roster:
            ordinals, tokens = rows.roster_tokens(ref.id)
            return tokens, ordinals
        return rows.provider_tokens(ref.id), None

    @contextmanager
    def _building(self, name: str) -> Iterator[None]:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        fd = os.open(self.directory / f".{name}{_LOCK}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


def _plausible(path: Path, ident: SegmentId) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        status = os.fstat(fd)
        return (
            stat.S_ISREG(status.st_mode)
            and status.st_size == ident.size()
            and os.pread(fd, HEADER_BYTES, 0) == ident.header()
        )
    except OSError:
        return False
    finally:
        os.close(fd)


def _unchanged(path: Path, segment: Segment) -> bool:
    """Whether the file at ``path`` is still the one ``segment`` was verified from."""
    if segment.identity is None:  # this process's own arrays (the folder could not be written)
        return True
    try:
        return file_identity(os.stat(path, follow_symlinks=False)) == segment.identity
    except OSError:
        return False


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
