from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Path, Query, Request, status

from matchhub.audit.service import AuditKeys
from matchhub.cases import service
from matchhub.cases.models import CaseState
from matchhub.cases.schemas import (
    CASE_ID,
    CaseList,
    CaseOut,
    FeedbackOut,
    OpenCase,
    TransitionIn,
)
from matchhub.cases.service import CaseRules
from matchhub.catalogue.schemas import FLAG_CODE
from matchhub.identity.auth import CaseWorker, FeedbackReader
from matchhub.kit.instants import Instant
from matchhub.kit.integers import Plain
from matchhub.kit.requests import AuditNote, ClockDep, ReadOnly, SessionDep, SettingsDep
from matchhub.kit.responses import errors
from matchhub.uploads.service import UploadContext

router = APIRouter(prefix="/v1", tags=["cases"])

CaseId = Path(pattern=CASE_ID)


@router.post(
    "/cases",
    status_code=status.HTTP_201_CREATED,
    response_model=CaseOut,
    responses=errors(401, 403, 404, 408, 409, 410, 413, 422),
)
def open_case(
    principal: CaseWorker,
    body: OpenCase,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    note: AuditNote,
) -> CaseOut:
    """Open a case on a flagged roster member, from a match job's result (`job`) or a lookup's
    answer (`lookup`: the answer's `reference`): the token and the flags must be in that
    result. The case starts as an `indication`. Needs `Matchhub-End-User`.

    Refusals: 422 `not_in_result`, `invalid_case_origin`, `invalid_token`,
    `raw_identifier_refused`, `end_user_required`; 404 `job_not_found`, `lookup_not_found`;
    409 `job_not_done`, `job_failed`, `flag_no_longer_current`, `result_too_old`,
    `case_exists`; 410
    `results_expired`. See docs/cases.md."""
    keys = cast(AuditKeys, request.app.state.audit_keys)
    rekeyer = cast(UploadContext, request.app.state.uploads).rekeyer
    note.update(job=body.job, lookup=body.lookup, flags=sorted(set(body.flags)))
    now = clock.now()
    case = service.open_case(
        session, principal, body, rekeyer=rekeyer, keys=keys, rules=CaseRules.of(settings), now=now
    )
    # The subject access trail finds the case's opening by the person's token.
    subjects = [keys.subject(body.token)]
    note.update(case=case.id, purpose=case.purpose, to=case.state, subjects=subjects)
    return service.describe(session, case, now)


@router.post(
    "/cases/{case_id}/transitions",
    response_model=CaseOut,
    responses=errors(401, 403, 404, 408, 409, 413, 422),
)
def move_case(
    principal: CaseWorker,
    body: TransitionIn,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    note: AuditNote,
    case_id: str = CaseId,
) -> CaseOut:
    """Move a case of the caller's to its next state (`reason`: for `refuted` one of
    not_the_person, source_outdated, rule_not_met, other; for `decided` upheld or withdrawn).
    Needs `Matchhub-End-User`. Each refusal changes nothing: 409 `case_closed`, `case_lapsed`,
    `not_verified`, `response_not_due`, `illegal_transition`; 422 `invalid_reason`,
    `end_user_required`; 404 `case_not_found` (also another agency's case). See
    docs/cases.md."""
    note.update(case=case_id, to=body.to.value, reason=body.reason)
    now = clock.now()
    case, before = service.transition(
        session, principal, case_id, body, rules=CaseRules.of(settings), now=now
    )
    note["from"] = before.value
    return service.describe(session, case, now)


@router.get(
    "/cases/{case_id}",
    response_model=CaseOut,
    responses=errors(401, 403, 404),
    dependencies=[ReadOnly],
)
def get_case(
    principal: CaseWorker,
    session: SessionDep,
    clock: ClockDep,
    note: AuditNote,
    case_id: str = CaseId,
) -> CaseOut:
    """The case with its history."""
    note["case"] = case_id
    case = service.own_case(session, principal, case_id)
    return service.describe(session, case, clock.now(), history=True)


@router.get(
    "/cases",
    response_model=CaseList,
    responses=errors(401, 403, 422),
    dependencies=[ReadOnly],
)
def list_cases(
    principal: CaseWorker,
    session: SessionDep,
    clock: ClockDep,
    note: AuditNote,
    state: Annotated[CaseState | None, Query(description="Only cases in this state.")] = None,
    flag: Annotated[
        str | None, Query(pattern=FLAG_CODE, max_length=64, description="Only cases on this flag.")
    ] = None,
    due_before: Annotated[
        Instant | None,
        Query(description="Only cases whose response is due before this (with its zone)."),
    ] = None,
    due_after: Annotated[
        Instant | None,
        Query(description="Only cases whose response is due at or after this (with its zone)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000), Plain] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000), Plain] = 0,
) -> CaseList:
    """The caller's cases, oldest first, a page at a time."""
    listing = service.list_cases(
        session,
        principal,
        clock.now(),
        state=state,
        flag=flag,
        due_before=due_before,
        due_after=due_after,
        limit=limit,
        offset=offset,
    )
    note.update(state=state.value if state else None, cases_out=len(listing.cases))
    return listing


@router.get(
    "/feedback",
    response_model=FeedbackOut,
    responses=errors(401, 403),
    dependencies=[ReadOnly],
)
def feedback(principal: FeedbackReader, session: SessionDep, settings: SettingsDep) -> FeedbackOut:
    """A provider: for its own flags, confirmed and refuted counts by reason per month, counts
    below the threshold suppressed. The consumer: its confirmation rate per flag and source."""
    return service.feedback(session, principal, CaseRules.of(settings))
