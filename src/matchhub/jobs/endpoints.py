from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import cast

from fastapi import APIRouter, Path, Request, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from matchhub.identity.auth import MatchCaller
from matchhub.jobs import service
from matchhub.jobs.schemas import JobOut, OpenJob
from matchhub.keystore.rekey import Sealer
from matchhub.kit.db import after_commit
from matchhub.kit.requests import AuditNote, ReadOnly, SessionDep, SettingsDep
from matchhub.kit.responses import errors

router = APIRouter(prefix="/v1/match-jobs", tags=["match jobs"])

JobId = Path(pattern=r"^[0-9a-f]{32}$")

BLOCK_BYTES = 64 * 1024
NDJSON = "application/x-ndjson"
CSV = "text/csv"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobOut,
    responses=errors(401, 403, 408, 409, 413, 422, 429),
)
def open_job(
    principal: MatchCaller,
    body: OpenJob,
    session: SessionDep,
    settings: SettingsDep,
    note: AuditNote,
    request: Request,
) -> JobOut:
    """Run the caller's current roster against every provider's current snapshot at once, in
    the background, for a stated purpose (optionally a subset of the granted flags)."""
    note.update(purpose=body.purpose, flags=body.flags)
    job = service.submit(session, principal, body, max_queued=settings.max_queued_jobs_per_consumer)
    note.update(job=job.id, roster_version=job.roster_snapshot_id)
    after_commit(session, request.app.state.job_runner.notify)
    return service.describe(job)


@router.get(
    "/{job_id}",
    response_model=JobOut,
    responses=errors(401, 403, 404),
    dependencies=[ReadOnly],
)
def get_job(
    principal: MatchCaller, session: SessionDep, note: AuditNote, job_id: str = JobId
) -> JobOut:
    """State, progress and, once done, the summary: roster size, flagged beneficiaries, counts
    per flag and per source kind."""
    note["job"] = job_id
    return service.describe(service.own_job(session, principal, job_id))


@router.get(
    "/{job_id}/results",
    responses={
        **errors(401, 403, 404, 409, 410),
        200: {
            "description": "One line per flagged roster member, in roster order.",
            "content": {
                NDJSON: {
                    "schema": {"type": "string"},
                    "example": '{"token": "<64 hex>", "flags": [{"code": '
                    '"bank.large_loan", "source": "bank", "as_of": '
                    '"2026-11-01"}]}',
                },
                CSV: {"schema": {"type": "string"}, "example": "token,flag,source,as_of"},
            },
        },
    },
    response_class=StreamingResponse,
    dependencies=[ReadOnly],
)
def get_results(
    principal: MatchCaller,
    request: Request,
    session: SessionDep,
    note: AuditNote,
    job_id: str = JobId,
) -> StreamingResponse:
    """The flagged tokens with their flags, source kinds and snapshot dates, streamed as NDJSON
    (default) or CSV (``Accept: text/csv``). Kept for the retention period, then deleted."""
    note["job"] = job_id
    job = service.own_job(session, principal, job_id)
    service.results_ready(job)
    note.update(
        purpose=job.purpose,
        roster_version=job.roster_snapshot_id,
        lines_out=(job.summary or {}).get("flagged_beneficiaries"),
    )
    factory = cast(sessionmaker[Session], request.app.state.read_sessionmaker)
    sealer = cast(Sealer, request.app.state.uploads.sealer)
    as_csv = CSV in request.headers.get("accept", "")

    def lines() -> Iterator[bytes]:
        # The request's session is closed when the route returns; the stream has its own.
        # Starlette pulls each item of a sync iterator through the thread pool, so lines go out
        # in blocks of about 64 KiB, not one hop a line.
        block = io.StringIO()
        writer = csv.writer(block)
        with factory() as stream_session:
            if as_csv:
                block.write("token,flag,source,as_of\r\n")
            for token, flags in service.stream_results(stream_session, job, sealer):
                if as_csv:
                    for flag in flags:
                        writer.writerow([token, flag["code"], flag["source"], flag["as_of"]])
                else:
                    block.write(json.dumps({"token": token, "flags": flags}, separators=(",", ":")))
                    block.write("\n")
                if block.tell() >= BLOCK_BYTES:
                    yield block.getvalue().encode()
                    block.seek(0)
                    block.truncate()
        if block.tell():
            yield block.getvalue().encode()

    return StreamingResponse(lines(), media_type=CSV if as_csv else NDJSON)
