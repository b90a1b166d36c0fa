"""The upload rules: open, chunks, commit, abort, expiry. No HTTP here and no commit: the
request's one transaction holds a chunk's rows and its record, or a commit's state flip."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from matchhub.catalogue import service as catalogue
from matchhub.identity.repository import IdentityRepository
from matchhub.identity.schemas import Principal
from matchhub.identity.scopes import Scope
from matchhub.keystore.models import MatchingKeyVersion
from matchhub.keystore.rekey import Rekeyer, Sealer
from matchhub.kit.db import after_commit
from matchhub.kit.errors import (
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    TooManyRequests,
    UnprocessableEntity,
)
from matchhub.kit.models import utcnow
from matchhub.protocol import wire
from matchhub.protocol.kinds import PROVIDER_KINDS
from matchhub.uploads.digests import RunningDigests
from matchhub.uploads.models import Snapshot, SnapshotState, Upload, UploadChunk
from matchhub.uploads.repository import RosterRows, SnapshotRepository, UploadRepository
from matchhub.uploads.schemas import ChunkReceipt, CommitUpload, OpenUpload, UploadOut


@dataclass(frozen=True)
class UploadContext:
    rekeyer: Rekeyer
    sealer: Sealer
    digests: RunningDigests
    ttl: timedelta
    max_open: int = 16


def open_upload(
    session: Session,
    principal: Principal,
    request: OpenUpload,
    ctx: UploadContext,
    *,
    idempotency_key: str | None = None,
) -> Upload:
    """Open an upload. With ``idempotency_key``, a repeat of a request whose answer was lost
    answers the upload the first one opened (and a different request under a key already
    used is refused): a retry never opens a second upload."""
    repo = UploadRepository(session)
    if idempotency_key is not None:
        earlier = repo.by_idempotency_key(principal.agency_id, idempotency_key)
        if earlier is not None:
            return _same_open(earlier, request)
    _check_open(session, principal, request)
    now = utcnow()
    IdentityRepository(session).hold(principal.agency_id)
    if repo.count_open(principal.agency_id, now) >= ctx.max_open:
        raise TooManyRequests(
            f"this agency has {ctx.max_open} uploads open already: commit or abort one "
            "(DELETE /v1/uploads/{id}) before opening another",
            code="too_many_open_uploads",
        )
    upload = Upload(
        id=secrets.token_hex(16),
        agency_id=principal.agency_id,
        kind=request.kind,
        key_version=request.key_version,
        flags=list(request.flags),
        expected_rows=request.expected_rows,
        as_of=request.as_of or now.date(),
        state="open",
        rows_received=0,
        chunks_received=0,
        created_at=now,
        expires_at=now + ctx.ttl,
        idempotency_key=idempotency_key,
    )
    if idempotency_key is None:
        repo.add(upload)
    elif not repo.add_keyed(upload):  # the same key, on a request running beside this one
        earlier = repo.by_idempotency_key(principal.agency_id, idempotency_key)
        if earlier is None:  # pragma: no cover (the unique index said it exists)
            raise Conflict("retry the request", code="idempotency_key_in_flight")
        return _same_open(earlier, request)
    codes: list[str | None] = [*request.flags] or [None]
    for flag_code in codes:
        snapshot = Snapshot(
            upload_id=upload.id,
            agency_id=principal.agency_id,
            kind="flag" if flag_code else "roster",
            flag_code=flag_code,
            key_version=request.key_version,
            state=SnapshotState.pending,
            as_of=upload.as_of,
            rows=0,
        )
        repo.add(snapshot)
        repo.create_partition(snapshot.id, snapshot.kind)
    return upload


def _check_open(session: Session, principal: Principal, request: OpenUpload) -> None:
    if request.kind == "flags":
        if principal.kind not in PROVIDER_KINDS:
            raise Forbidden("only provider agencies push flag snapshots", code="scope_denied")
        if not request.flags:
            raise UnprocessableEntity("a flag snapshot declares its flags", code="flags_required")
        if len(set(request.flags)) != len(request.flags):
            raise UnprocessableEntity("a flag is declared twice", code="duplicate_flag")
        catalogue.assertable_flags(session, principal.kind, request.flags)
    else:
        if Scope.roster not in principal.scopes:
            raise Forbidden("only a consumer registers a roster", code="scope_denied")
        if request.flags:
            raise UnprocessableEntity("a roster carries no flags", code="roster_has_flags")
    version = session.get(MatchingKeyVersion, request.key_version)
    if version is None or version.state != "active":
        raise UnprocessableEntity(
            # Not echoed: a value sent in the wrong field (a national ID) must go no further.
            "the upload's matching-key version is not one the broker accepts (an active one)",
            code="unknown_key_version",
        )


def _same_open(earlier: Upload, request: OpenUpload) -> Upload:
    same = (
        earlier.kind == request.kind
        and earlier.key_version == request.key_version
        and list(earlier.flags) == list(request.flags)
        and earlier.expected_rows == request.expected_rows
        and (request.as_of is None or earlier.as_of == request.as_of)
    )
    if not same:
        raise Conflict(
            "this Idempotency-Key opened an upload with other parameters; use a new key for "
            "a new upload",
            code="idempotency_key_reused",
        )
    return earlier


def _own_upload(
    session: Session, principal: Principal, upload_id: str, *, for_update: bool = False
) -> Upload:
    upload = UploadRepository(session).upload(upload_id, for_update=for_update)
    # Another agency's upload is "not found": no hint that it exists.
    if upload is None or upload.agency_id != principal.agency_id:
        raise NotFound("no such upload", code="upload_not_found")
    return upload


def _open(upload: Upload) -> None:
    if upload.state == "open" and upload.expires_at < datetime.now(UTC):
        raise Gone("this upload has expired; open a new one", code="upload_expired")
    if upload.state != "open":
        raise Conflict(f"this upload is {upload.state}", code="upload_not_open")


def put_chunk(
    session: Session,
    principal: Principal,
    upload_id: str,
    seq: int,
    *,
    body: bytes,
    media_type: str,
    ctx: UploadContext,
) -> ChunkReceipt:
    upload = _own_upload(session, principal, upload_id)
    _open(upload)
    digest = hashlib.sha256(body).hexdigest()
    repo = UploadRepository(session)
    stored = repo.chunk(upload_id, seq)
    if stored is not None:
        if not hmac.compare_digest(stored.sha256, digest):
            raise Conflict(
                f"chunk {seq} was received with different content", code="chunk_conflict"
            )
        # A retry: its answer was lost, or it went to another process meanwhile. It still
        # feeds this process's running digest of the bodies (the first commit form).
        ctx.digests.advance(upload_id, seq, body)
        return ChunkReceipt(
            seq=seq,
            rows=stored.rows,
            sha256=digest,
            duplicate=True,
            next_seq=upload.chunks_received,
        )
    if seq != upload.chunks_received:
        expected = upload.chunks_received
        raise Conflict(
            f"chunk {seq} is out of order; the broker expects chunk {expected}",
            code="chunk_out_of_order",
            details={"next_seq": expected},
        )
    try:
        rows = wire.parse(body, media_type, upload.flags, upload.kind == "roster")
    except wire.ChunkError as exc:
        details = None if exc.line is None else {"line": exc.line}
        raise UnprocessableEntity(str(exc), code=exc.code, details=details) from None
    if upload.rows_received + len(rows) > upload.expected_rows:
        raise UnprocessableEntity(
            f"this chunk would bring the upload past the {upload.expected_rows} rows declared",
            code="too_many_rows",
        )
    snapshots = repo.snapshots_of(upload_id)  # made in the order of upload.flags
    rekeyed = ctx.rekeyer.rekey_many(rows.tokens)
    counts: Counter[int] = Counter()
    roster: RosterRows | None = None
    per_snapshot: list[tuple[int, bytes]] = []
    if upload.kind == "roster":
        roster = RosterRows(
            snapshots[0].id, upload.rows_received, rekeyed, ctx.sealer.seal_many(rows.tokens)
        )
        counts[roster.snapshot_id] = len(rows)
    else:
        table = np.frombuffer(rekeyed, dtype="V16")
        for bit, snapshot in enumerate(snapshots):
            chosen = table[(rows.masks >> np.uint64(bit)) & np.uint64(1) == 1]
            per_snapshot.append((snapshot.id, chosen.tobytes()))
            counts[snapshot.id] = len(chosen)
    try:
        repo.add(
            UploadChunk(upload_id=upload_id, seq=seq, sha256=digest, rows=len(rows), size=len(body))
        )
    except IntegrityError:
        raise Conflict(
            f"chunk {seq} is being received on another request; retry", code="chunk_in_flight"
        ) from None
    for snapshot_id, tokens in per_snapshot:
        repo.insert_rows(snapshot_id, tokens)
    if roster is not None:
        repo.insert_roster_rows(roster)
    for snapshot in snapshots:
        snapshot.rows += counts[snapshot.id]
    upload.rows_received += len(rows)
    upload.chunks_received += 1
    upload.expires_at = utcnow() + ctx.ttl
    session.flush()
    after_commit(session, lambda: ctx.digests.advance(upload_id, seq, body))
    return ChunkReceipt(seq=seq, rows=len(rows), sha256=digest, duplicate=False, next_seq=seq + 1)


def commit_upload(
    session: Session,
    principal: Principal,
    upload_id: str,
    request: CommitUpload,
    ctx: UploadContext,
) -> Upload:
    upload = _own_upload(session, principal, upload_id, for_update=True)
    if upload.state == "committed" and _repeats_the_commit(session, upload, request):
        return upload  # its first answer was lost: answer it again, changing nothing
    _open(upload)
    if request.chunks_sha256 is None and request.sha256 is None:
        raise UnprocessableEntity(
            "a commit names the digest of what was sent (chunks_sha256)", code="digest_required"
        )
    if not (request.rows == upload.rows_received == upload.expected_rows):
        raise UnprocessableEntity(
            f"the commit says {request.rows} rows; {upload.rows_received} were received and "
            f"{upload.expected_rows} declared",
            code="row_count_mismatch",
            details={"rows_received": upload.rows_received, "expected_rows": upload.expected_rows},
        )
    _check_digests(session, upload, request, ctx)
    repo = UploadRepository(session)
    repo.lock_agency(upload.agency_id)
    mine = repo.snapshots_of(upload_id)
    now = utcnow()
    snapshots = SnapshotRepository(session)
    if upload.kind == "roster":
        previous = snapshots.current(upload.agency_id, "roster", [None])
    else:
        previous = snapshots.current(upload.agency_id, "flag", upload.flags)
    for snapshot in mine:
        repo.attach_partition(snapshot.id, snapshot.kind)
    repo.set_state([s.id for s in previous], SnapshotState.superseded)
    repo.set_state([s.id for s in mine], SnapshotState.current, committed_at=now)
    upload.state = "committed"
    upload.finished_at = now
    session.flush()
    after_commit(session, lambda: ctx.digests.forget(upload_id))
    return upload


def _repeats_the_commit(session: Session, upload: Upload, request: CommitUpload) -> bool:
    """The same commit again (same rows, same ``chunks_sha256`` of the chunks received): a
    client retrying a commit whose answer it never got. The first form (``sha256`` alone) is
    not accepted here: the bodies' digest is not kept after the commit."""
    if request.chunks_sha256 is None or request.rows != upload.rows_received:
        return False
    received = UploadRepository(session).chunk_digests(upload.id)
    combined = wire.chunks_digest(bytes.fromhex(d) for _, d in received)
    return hmac.compare_digest(combined, request.chunks_sha256)


def _check_digests(
    session: Session, upload: Upload, request: CommitUpload, ctx: UploadContext
) -> None:
    """The commit's digests against what arrived. ``chunks_sha256`` is recomputed from the
    chunk digests in the database, so any process can check it. The first form, ``sha256`` of
    the bodies themselves, needs the running digest only a process that received every chunk
    holds (the bodies hold wire tokens and are never kept): checked where it is held, refused
    when it is the only digest and is not."""
    if request.chunks_sha256 is not None:
        received = UploadRepository(session).chunk_digests(upload.id)
        if [seq for seq, _ in received] != list(range(upload.chunks_received)):
            raise Conflict(  # pragma: no cover (chunks and their count commit together)
                "the chunks received do not form a sequence", code="chunks_incomplete"
            )
        combined = wire.chunks_digest(bytes.fromhex(d) for _, d in received)
        if not hmac.compare_digest(combined, request.chunks_sha256):
            raise UnprocessableEntity(
                "chunks_sha256 differs from the digest of the chunks received",
                code="digest_mismatch",
            )
    if request.sha256 is not None:
        position, digest = ctx.digests.hexdigest(upload.id)
        if position == upload.chunks_received:
            if not hmac.compare_digest(digest, request.sha256):
                raise UnprocessableEntity(
                    "the SHA-256 of the chunks received differs from the commit's",
                    code="digest_mismatch",
                )
        elif request.chunks_sha256 is None:
            raise Conflict(
                "this broker process did not receive every chunk of this upload itself, so it "
                "cannot check the SHA-256 of the bodies (they are never kept): commit with "
                "chunks_sha256, or re-send the chunks from details.next_seq to this process",
                code="digest_state_lost",
                details={"next_seq": position},
            )


def abort_upload(
    session: Session, principal: Principal, upload_id: str, ctx: UploadContext
) -> Upload:
    upload = _own_upload(session, principal, upload_id, for_update=True)
    if upload.state != "open":
        raise Conflict(f"this upload is {upload.state}", code="upload_not_open")
    _discard(session, upload, "aborted")
    after_commit(session, lambda: ctx.digests.forget(upload_id))
    return upload


def _discard(session: Session, upload: Upload, state: str) -> None:
    repo = UploadRepository(session)
    repo.set_state([s.id for s in repo.snapshots_of(upload.id)], SnapshotState.discarded)
    upload.state = state
    upload.finished_at = utcnow()
    session.flush()


def expire_stale(session: Session, now: datetime | None = None) -> list[str]:
    expired = UploadRepository(session).open_uploads_expired(now or utcnow())
    for upload in expired:
        _discard(session, upload, "expired")
    return [u.id for u in expired]


def purge_unreachable(session: Session) -> int:
    """Delete the rows no reader can see: those of discarded snapshots (never visible) and of
    replaced ones once every transaction that could still take them for current has ended.

    On PostgreSQL a statement takes its data snapshot before it looks up the table's
    partitions, so one that began just before a replacing commit still reads the replaced
    snapshot, and dropping its partition under it would fail it. A replaced snapshot is
    therefore stamped, by the database clock, when a pass first sees it replaced (necessarily
    after the commit), and purged once no other transaction older than that stamp is open.
    Run after commits and by the janitor; safe to repeat and to interrupt."""
    repo = UploadRepository(session)
    candidates = repo.to_purge()
    # Read after the candidates, so a replacement they show has committed before `seen`.
    seen = repo.clock()
    oldest = repo.oldest_other_transaction()
    deleted = 0
    for snapshot in candidates:
        if snapshot.state == SnapshotState.superseded:
            if snapshot.replaced_seen_at is None:
                snapshot.replaced_seen_at = seen
            if oldest is not None and oldest <= snapshot.replaced_seen_at:
                continue  # a transaction from before the replacement may still read it
        removed = repo.delete_rows(snapshot)
        if removed is None:
            continue  # its partition is in use; a later pass drops it
        deleted += removed
        snapshot.state = SnapshotState.purged
    session.flush()
    return deleted


def purges_waiting(session: Session) -> int:
    """Snapshots whose rows are still to be purged."""
    return len(UploadRepository(session).to_purge())


def describe(session: Session, upload: Upload, ctx: UploadContext) -> UploadOut:
    roster_version = None
    if upload.kind == "roster" and upload.state == "committed":
        roster_version = UploadRepository(session).snapshots_of(upload.id)[0].id
    return UploadOut(
        id=upload.id,
        kind=upload.kind,
        state=upload.state,
        key_version=upload.key_version,
        flags=upload.flags,
        expected_rows=upload.expected_rows,
        as_of=upload.as_of,
        rows_received=upload.rows_received,
        chunks_received=upload.chunks_received,
        next_seq=upload.chunks_received,
        created_at=upload.created_at,
        expires_at=upload.expires_at,
        finished_at=upload.finished_at,
        roster_version=roster_version,
    )


def status(session: Session, principal: Principal, upload_id: str, ctx: UploadContext) -> UploadOut:
    return describe(session, _own_upload(session, principal, upload_id), ctx)


def discard_key_version(session: Session, version: str) -> tuple[list[int], int, int]:
    """A retired matching-key version's snapshots and rosters are discarded (their rows go with
    the next purge) and its open uploads aborted. Returns the discarded rosters' ids, and the
    numbers of snapshots discarded and uploads aborted."""
    repo = UploadRepository(session)
    snapshots = repo.snapshots_under_key(version)
    for snapshot in snapshots:
        snapshot.state = SnapshotState.discarded
    now = utcnow()
    uploads = repo.open_uploads_under_key(version)
    for upload in uploads:
        upload.state, upload.finished_at = "aborted", now
    session.flush()
    return [s.id for s in snapshots if s.kind == "roster"], len(snapshots), len(uploads)
