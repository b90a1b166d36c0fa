from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Depends, Header, Path, Request, status
from sqlalchemy.orm import Session

from matchhub.identity.auth import Uploader
from matchhub.kit.db import after_commit
from matchhub.kit.integers import Plain
from matchhub.kit.requests import AuditNote, ChunkSized, ReadOnly, SessionDep
from matchhub.kit.responses import errors
from matchhub.protocol import wire
from matchhub.uploads import service
from matchhub.uploads.schemas import ChunkReceipt, CommitUpload, OpenUpload, UploadOut
from matchhub.uploads.service import UploadContext

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])

UploadId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
Seq = Annotated[int, Path(ge=0, le=10_000_000), Plain]


def get_upload_context(request: Request) -> UploadContext:
    return cast(UploadContext, request.app.state.uploads)


UploadCtx = Annotated[UploadContext, Depends(get_upload_context)]


async def chunk_body(request: Request) -> bytes:
    """The chunk body, which the gate has read already, within ``max_chunk_bytes``, from a
    caller it identified (web/gate.py)."""
    return await request.body()


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def purge_soon(request: Request, session: Session) -> None:
    """Once the commit has committed, have the background work purge what it replaced or
    discarded (web/background.py), in a thread of its own: never in this request, whose
    admission slot a purge waiting for an old transaction would hold for its patience. A
    process without the background work leaves it to the workers' janitor."""
    after_commit(session, request.app.state.job_runner.purge_soon)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[A-Za-z0-9_.:-]{16,64}$",
        description="Optional, 16 to 64 characters of your choosing, new for each upload: the "
        "same request sent again with the same key (its answer was lost) answers the upload "
        "the first one opened instead of opening another; other parameters under a key "
        "already used are refused (409 idempotency_key_reused).",
    ),
]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadOut,
    responses=errors(401, 403, 408, 409, 413, 422, 429),
)
def open_upload(
    principal: Uploader,
    body: OpenUpload,
    session: SessionDep,
    ctx: UploadCtx,
    note: AuditNote,
    idempotency_key: IdempotencyKey = None,
) -> UploadOut:
    """Open an upload: a provider's flag snapshot (``kind: flags``, the flags it covers) or the
    consumer's roster (``kind: roster``), under a matching-key version, with its row count."""
    note.update(upload_kind=body.kind, flags=body.flags, expected_rows=body.expected_rows)
    upload = service.open_upload(session, principal, body, ctx, idempotency_key=idempotency_key)
    # Recorded once the broker knows it for a version: a refused one could be anything sent in
    # the wrong field (a national ID), which the append-only log would keep for good.
    note.update(upload=upload.id, key_version=upload.key_version)
    return service.describe(session, upload, ctx)


@router.put(
    "/{upload_id}/chunks/{seq}",
    response_model=ChunkReceipt,
    responses=errors(401, 403, 404, 408, 409, 410, 413, 422),
    dependencies=[ChunkSized],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                wire.NDJSON: {"schema": {"type": "string"}},
                wire.COMPACT: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
def put_chunk(
    principal: Uploader,
    upload_id: UploadId,
    seq: Seq,
    request: Request,
    body: Annotated[bytes, Depends(chunk_body)],
    session: SessionDep,
    ctx: UploadCtx,
    note: AuditNote,
) -> ChunkReceipt:
    """Chunk ``seq`` (0, 1, 2, ... in order). Re-sending a chunk with the same content is
    accepted once; different content under the same number is refused."""
    note.update(upload=upload_id, chunk=seq, bytes_in=len(body))
    receipt = service.put_chunk(
        session, principal, upload_id, seq, body=body, media_type=media_type(request), ctx=ctx
    )
    note.update(rows_in=receipt.rows, duplicate=receipt.duplicate)
    return receipt


@router.post(
    "/{upload_id}/commit",
    response_model=UploadOut,
    responses=errors(401, 403, 404, 408, 409, 410, 413, 422),
)
def commit_upload(
    principal: Uploader,
    upload_id: UploadId,
    body: CommitUpload,
    session: SessionDep,
    ctx: UploadCtx,
    request: Request,
    note: AuditNote,
) -> UploadOut:
    """Commit: the row count and SHA-256 must match what arrived. The snapshot then atomically
    replaces the agency's previous one for the same flags (or becomes the current roster).
    The same commit again (same rows and ``chunks_sha256``) answers the committed upload."""
    note.update(upload=upload_id, rows=body.rows)
    upload = service.commit_upload(session, principal, upload_id, body, ctx)
    note["flags"] = upload.flags
    purge_soon(request, session)
    return service.describe(session, upload, ctx)


@router.get(
    "/{upload_id}",
    response_model=UploadOut,
    responses=errors(401, 403, 404),
    dependencies=[ReadOnly],
)
def get_upload(
    principal: Uploader, upload_id: UploadId, session: SessionDep, ctx: UploadCtx
) -> UploadOut:
    """The state of one of the caller's own uploads, with the chunk it expects next."""
    return service.status(session, principal, upload_id, ctx)


@router.delete("/{upload_id}", response_model=UploadOut, responses=errors(401, 403, 404, 409))
def abort_upload(
    principal: Uploader,
    upload_id: UploadId,
    session: SessionDep,
    ctx: UploadCtx,
    request: Request,
    note: AuditNote,
) -> UploadOut:
    """Abort an open upload: nothing of it becomes visible, its rows are purged."""
    note["upload"] = upload_id
    upload = service.abort_upload(session, principal, upload_id, ctx)
    purge_soon(request, session)
    return service.describe(session, upload, ctx)
