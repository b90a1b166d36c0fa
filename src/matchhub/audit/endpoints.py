from __future__ import annotations

import json
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Query, Request

from matchhub.audit import service
from matchhub.audit.schemas import (
    ActivityOut,
    CheckpointOut,
    ConsistencyOut,
    EntriesOut,
    EntryOut,
    InclusionOut,
)
from matchhub.identity.auth import AuditReader, AuditWitness
from matchhub.identity.schemas import Principal
from matchhub.kit.errors import ServiceUnavailable, TooManyRequests, UnprocessableEntity
from matchhub.kit.instants import Instant
from matchhub.kit.integers import Plain
from matchhub.kit.ratelimit import RateLimiter, retry_after
from matchhub.kit.requests import AuditNote, ReadOnly, SessionDep
from matchhub.kit.responses import errors
from matchhub.protocol.tokens import is_token

router = APIRouter(prefix="/v1/audit", tags=["audit"])


def _keys(request: Request) -> service.AuditKeys:
    return cast(service.AuditKeys, request.app.state.audit_keys)


# The largest sequence number either database's 64-bit integer holds: a larger one is a 422,
# never a 500 from the driver.
SEQ_MAX = 2**63 - 1

_CODE = r"^[a-z0-9][a-z0-9._:-]{0,63}$"


@router.get(
    "/entries",
    response_model=EntriesOut,
    responses=errors(401, 403, 422),
    dependencies=[ReadOnly],
)
def list_entries(
    principal: AuditReader,
    request: Request,
    session: SessionDep,
    note: AuditNote,
    agency: Annotated[str | None, Query(pattern=_CODE, description="An agency's code.")] = None,
    route: Annotated[
        str | None,
        Query(
            pattern=r"^/[A-Za-z0-9/{}_.-]{0,199}$",
            description="A route template, e.g. `/v1/lookups`.",
        ),
    ] = None,
    since: Annotated[
        Instant | None,
        Query(description="Entries from this instant on (ISO 8601, with offset; inclusive)."),
    ] = None,
    until: Annotated[
        Instant | None,
        Query(description="Entries before this instant (ISO 8601, with offset; exclusive)."),
    ] = None,
    subject: Annotated[
        str | None,
        Query(description="A person's wire token: every entry that concerns that person."),
    ] = None,
    end_user: Annotated[
        str | None,
        Query(
            pattern=r"^[a-z0-9][a-z0-9._:-]{7,63}$",
            description="A staff member's pseudonymous id (Matchhub-End-User): every entry "
            "their desk caused.",
        ),
    ] = None,
    outcome: Annotated[
        Literal["accepted", "refused"] | None,
        Query(description="Requests accepted, or refused."),
    ] = None,
    error: Annotated[
        str | None,
        Query(pattern=r"^[a-z0-9_]{1,64}$", description="Refusals with this error code."),
    ] = None,
    order: Annotated[
        Literal["asc", "desc"], Query(description="`asc`: oldest first; `desc`: newest first.")
    ] = "asc",
    after: Annotated[
        int,
        Query(
            ge=-1,
            le=SEQ_MAX,
            description="The cursor: `next_after` of the previous page (entries after it "
            "in the chosen order); -1 starts at the oldest (`asc`) or the newest (`desc`).",
        ),
        Plain,
    ] = -1,
    limit: Annotated[int, Query(ge=1, le=1000), Plain] = 100,
) -> EntriesOut:
    """Entries of the audit log, filtered by agency, route, period, subject, end user, outcome
    and error code, in pages by sequence number (keyset: as fast on the last page as the
    first)."""
    if since is not None and until is not None and since >= until:
        raise UnprocessableEntity("since must be before until", code="invalid_period")
    digest = None
    if subject is not None:
        if not is_token(subject):
            raise UnprocessableEntity("subject must be a 64-hex wire token", code="invalid_token")
        digest = _keys(request).subject(subject)
        note["subjects"] = [digest]
    query = service.EntryFilter(
        agency=agency,
        route=route,
        since=since,
        until=until,
        subject=digest,
        end_user=end_user,
        outcome=outcome,
        error=error,
    )
    rows = service.entries(session, query, after=after, limit=limit, newest_first=order == "desc")
    note["entries_out"] = len(rows)
    return EntriesOut(
        entries=[
            EntryOut(
                seq=e.seq,
                created_at=e.created_at,
                kind=e.kind,
                agency=e.agency,
                route=e.route,
                end_user=e.end_user,
                leaf_hash=bytes(e.leaf_hash).hex(),
                body=e.body,
                entry=json.loads(e.body),
            )
            for e in rows
        ],
        next_after=rows[-1].seq if len(rows) == limit else None,
    )


def _witness_turn(request: Request, principal: Principal) -> None:
    """Every agency may witness the log; each within its own rate (``witness_rate_per_second``
    and ``witness_burst``), so no one of them can keep the broker busy with it."""
    limiter = cast(RateLimiter, request.app.state.witness_limiter)
    wait = limiter.acquire(principal.code)
    if wait:
        raise TooManyRequests(
            "witness rate exceeded for this agency",
            code="witness_rate_limited",
            headers={"Retry-After": retry_after(wait)},
        )


@router.get(
    "/activity",
    response_model=ActivityOut,
    responses=errors(401, 403, 422),
    dependencies=[ReadOnly],
)
def activity(
    principal: AuditReader,
    session: SessionDep,
    note: AuditNote,
    since: Annotated[Instant, Query(description="From this instant (ISO 8601, with offset).")],
    until: Annotated[Instant, Query(description="Before this instant (ISO 8601, with offset).")],
    utc_offset_minutes: Annotated[
        int,
        Query(ge=-720, le=840, description="Local days and hours at this offset."),
        Plain,
    ] = 0,
    many_staff: Annotated[
        int,
        Query(ge=1, le=1000, description="List people looked up by this many staff."),
        Plain,
    ] = 3,
) -> ActivityOut:
    """A period of the log counted by the database, for the auditors' anomaly page and report:
    requests per local day, agency, staff member, route, outcome, error code and purpose;
    people looked up per staff member; lookups per local weekday and hour; and the people
    looked up by at least ``many_staff`` staff members (by subject digest)."""
    if since >= until:
        raise UnprocessableEntity("since must be before until", code="invalid_period")
    found = service.activity(
        session, since, until, offset_minutes=utc_offset_minutes, many_staff=many_staff
    )
    note["entries_counted"] = found["stop_seq"] - found["first_seq"]
    return ActivityOut(**found)


@router.get(
    "/checkpoint",
    response_model=CheckpointOut,
    responses=errors(401, 403, 429, 503),
    dependencies=[ReadOnly],
)
def get_checkpoint(principal: AuditWitness, request: Request, session: SessionDep) -> CheckpointOut:
    """The latest signed checkpoint. Checkpoints are signed on a schedule (every
    ``audit_checkpoint_every`` entries, and when entries have waited
    ``audit_checkpoint_seconds``), never for a request. Keep it: the next one must be
    consistent with it (GET /v1/audit/proofs/consistency)."""
    _witness_turn(request, principal)
    keys = _keys(request)
    cp = service.latest_checkpoint(session)
    if cp is None:
        raise ServiceUnavailable(
            "no checkpoint has been signed yet; ask again in a minute", code="no_checkpoint_yet"
        )
    return CheckpointOut(
        origin=keys.origin,
        size=cp.size,
        root=bytes(cp.root).hex(),
        note=cp.note,
        verifier_key=keys.verifier_key,
    )


@router.get(
    "/proofs/inclusion",
    response_model=InclusionOut,
    responses=errors(401, 403, 404, 422),
    dependencies=[ReadOnly],
)
def inclusion_proof(
    principal: AuditReader,
    session: SessionDep,
    seq: Annotated[int, Query(ge=0, le=SEQ_MAX), Plain],
    tree_size: Annotated[int, Query(ge=1, le=SEQ_MAX), Plain],
) -> InclusionOut:
    """RFC 9162 inclusion proof of entry ``seq`` in the tree of ``tree_size`` entries."""
    return InclusionOut(**service.inclusion(session, seq, tree_size))


@router.get(
    "/proofs/consistency",
    response_model=ConsistencyOut,
    responses=errors(401, 403, 422, 429),
    dependencies=[ReadOnly],
)
def consistency_proof(
    principal: AuditWitness,
    request: Request,
    session: SessionDep,
    old_size: Annotated[int, Query(ge=0, le=SEQ_MAX), Plain],
    new_size: Annotated[int, Query(ge=0, le=SEQ_MAX), Plain],
) -> ConsistencyOut:
    """RFC 9162 consistency proof that the tree of ``old_size`` is a prefix of ``new_size``."""
    _witness_turn(request, principal)
    return ConsistencyOut(**service.consistency(session, old_size, new_size))
