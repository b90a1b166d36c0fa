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
        # in blocks of about 64 KiB, not one hop a line. Each distinct set of flags is rendered
        # once (its JSON, or its CSV rows after the token) and a line assembled from fragments.
        block: list[str] = ["token,flag,source,as_of\r\n"] if as_csv else []
        size = 0
        head, render = ("", _csv_tails) if as_csv else ('{"token":"', _ndjson_tails)
        with factory() as stream_session:
            for token, tails in service.stream_results(stream_session, job, sealer, render):
                for tail in tails:
                    line = head + token + tail
                    block.append(line)
                    size += len(line)
                if size >= BLOCK_BYTES:
                    yield "".join(block).encode()
                    block.clear()
                    size = 0
        if block:
            yield "".join(block).encode()

    return StreamingResponse(lines(), media_type=CSV if as_csv else NDJSON)


# A result's lines after its token, made once per distinct set of flags: the NDJSON line's
# rest, or one CSV row's rest per flag (the token, hex, never needs quoting).


def _ndjson_tails(flags: list[dict[str, str]]) -> list[str]:
    return ['","flags":' + json.dumps(flags, separators=(",", ":")) + "}\n"]


def _csv_tails(flags: list[dict[str, str]]) -> list[str]:
    tails = []
    for flag in flags:
        row = io.StringIO()
        csv.writer(row).writerow(["", flag["code"], flag["source"], flag["as_of"]])
        tails.append(row.getvalue())
    return tails
