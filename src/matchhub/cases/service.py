"""Case rules: opening from a result, the state machine, feedback counts, lapses. No HTTP, no
commit. Every time is the caller's ``now``, read from the one clock (kit/clock.py).

    indication ─▶ verifying ─▶ confirmed ─▶ notified ─▶ responded ─▶ decided ─▶ closed
        │                  └─▶ refuted(reason) ─────────────────────────────────▶ closed
        └─ not taken up by ``lapses_at`` ─▶ lapsed

``decided`` is ``upheld`` or ``withdrawn``; ``withdrawn`` may also follow ``confirmed`` or
``notified`` at once, ``upheld`` only a response or a notice whose response period has ended.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from matchhub.audit.service import AuditKeys
from matchhub.cases.models import (
    Case,
    CaseEvent,
    CaseFlag,
    CaseState,
    Decision,
    RefutedReason,
)
from matchhub.cases.repository import CaseRepository
from matchhub.cases.schemas import (
    CaseEventOut,
    CaseFlagOut,
    CaseList,
    CaseOut,
    ConfirmationRate,
    FeedbackCell,
    FeedbackOut,
    OpenCase,
    TransitionIn,
)
from matchhub.catalogue.models import Purpose
from matchhub.identity.schemas import Principal
from matchhub.jobs import service as jobs
from matchhub.keystore.rekey import Rekeyer
from matchhub.kit.errors import Conflict, NotFound, UnprocessableEntity
from matchhub.kit.settings import Settings
from matchhub.protocol.kinds import PROVIDER_KINDS, AgencyKind
from matchhub.protocol.tokens import is_token, looks_like_raw_identifier

S = CaseState

# Which state may follow which (the rules beyond the table are in :func:`check_move`).
NEXT: dict[CaseState, frozenset[CaseState]] = {
    S.indication: frozenset({S.verifying}),
    S.verifying: frozenset({S.confirmed, S.refuted}),
    S.confirmed: frozenset({S.notified, S.decided}),
    S.refuted: frozenset({S.closed}),
    S.notified: frozenset({S.responded, S.decided}),
    S.responded: frozenset({S.decided}),
    S.decided: frozenset({S.closed}),
    S.closed: frozenset(),
    S.lapsed: frozenset(),
}
LOOKUP_ROUTE = "/v1/lookups"
MAX_NOTICE_DAYS = 3650
# The reason codes a move takes: none but to these two states.
REASONS: dict[CaseState, tuple[str, ...]] = {
    S.refuted: tuple(r.value for r in RefutedReason),
    S.decided: tuple(d.value for d in Decision),
}


@dataclass(frozen=True)
class CaseRules:
    """The operator's settings the rules read."""

    lapse: timedelta
    notice_days: int
    feedback_threshold: int

    @classmethod
    def of(cls, settings: Settings) -> CaseRules:
        return cls(
            lapse=timedelta(days=settings.case_lapse_days),
            notice_days=settings.case_notice_days,
            feedback_threshold=settings.feedback_min_count,
        )


def state_of(case: Case, now: datetime) -> CaseState:
    """The state as the rules read it: an indication past its lapse time has lapsed, whether or
    not the scheduled pass has recorded it yet."""
    state = CaseState(case.state)
    if state is S.indication and now >= case.lapses_at:
        return S.lapsed
    return state


# --- opening -------------------------------------------------------------------------------


def require_end_user(principal: Principal) -> None:
    """A case is opened and moved by a person: the request must name them
    (``Matchhub-End-User``), so every step of due process says who took it."""
    if principal.end_user is None:
        raise UnprocessableEntity(
            "name the staff member who acts in the Matchhub-End-User header: every step of a "
            "case records who took it",
            code="end_user_required",
        )


def check_token(token: str) -> None:
    if is_token(token):
        return
    if looks_like_raw_identifier(token):
        raise UnprocessableEntity(
            "token looks like a raw identifier; the broker never accepts one",
            code="raw_identifier_refused",
        )
    raise UnprocessableEntity("token is not 64 lowercase hex characters", code="invalid_token")


@dataclass(frozen=True)
class Origin:
    """What the result a case is opened from said: its purpose, when, and the flags."""

    purpose: str
    at: datetime
    found: list[Found]


@dataclass(frozen=True)
class Found:
    """A flag of the result a case is opened from."""

    code: str
    source: str
    as_of: date
    provider_id: int


def open_case(
    session: Session,
    principal: Principal,
    body: OpenCase,
    *,
    rekeyer: Rekeyer,
    keys: AuditKeys,
    rules: CaseRules,
    now: datetime,
) -> Case:
    require_end_user(principal)
    if (body.job is None) == (body.lookup is None):
        raise UnprocessableEntity(
            "name the result the case comes from: `job` or `lookup`, one of them",
            code="invalid_case_origin",
        )
    check_token(body.token)
    codes = sorted(set(body.flags))
    stored = rekeyer.rekey(bytes.fromhex(body.token))
    repo = CaseRepository(session)
    if body.job is not None:
        origin = _from_job(repo, session, principal, job_id=body.job, stored=stored, codes=codes)
    else:
        assert body.lookup is not None  # noqa: S101 (checked above)
        origin = _from_lookup(
            repo,
            principal,
            seq=body.lookup,
            token=body.token,
            stored=stored,
            codes=codes,
            keys=keys,
        )
    # An indication not taken up in time lapses; a result as old as that is one too, so a
    # lapsed case cannot be opened again from the result it came from.
    if now - origin.at >= rules.lapse:
        raise Conflict(
            "the result is older than an indication may wait; run the match or the lookup again",
            code="result_too_old",
        )
    existing = repo.open_for(principal.agency_id, stored, now)
    if existing is not None:
        raise Conflict(
            "this person already has an open case of yours",
            code="case_exists",
            details={"case": existing},
        )
    case = Case(
        id=secrets.token_hex(16),
        agency_id=principal.agency_id,
        purpose=origin.purpose,
        job_id=body.job,
        lookup_seq=body.lookup,
        token=stored,
        state=S.indication.value,
        opened_by=principal.end_user,
        opened_at=now,
        lapses_at=now + rules.lapse,
        updated_at=now,
    )
    flags = [
        CaseFlag(
            case_id=case.id, code=f.code, source=f.source, as_of=f.as_of, provider_id=f.provider_id
        )
        for f in origin.found
    ]
    event = CaseEvent(
        case_id=case.id,
        at=now,
        from_state=None,
        to_state=S.indication.value,
        end_user=principal.end_user,
    )
    repo.add(case, flags, event)
    return case


def _not_in_result(what: str) -> UnprocessableEntity:
    return UnprocessableEntity(
        f"the {what} does not give this token those flags; a case is opened only on what a "
        "result said",
        code="not_in_result",
    )


def _from_job(
    repo: CaseRepository,
    session: Session,
    principal: Principal,
    *,
    job_id: str,
    stored: bytes,
    codes: list[str],
) -> Origin:
    job = jobs.own_job(session, principal, job_id)
    jobs.results_ready(job)
    ordinal = repo.roster_ordinal(job.roster_snapshot_id, stored)
    indexes = repo.result_sources(job.id, ordinal) if ordinal is not None else None
    if indexes is None:
        raise _not_in_result("match job's result")
    sources = [(job.sources or [])[i] for i in indexes]
    providers = repo.snapshot_agencies({int(s["snapshot_id"]) for s in sources})
    found = [
        Found(s["flag"], s["source"], _date(s["as_of"]), providers[int(s["snapshot_id"])])
        for s in sources
        if s["flag"] in codes
    ]
    if {f.code for f in found} != set(codes):
        raise _not_in_result("match job's result")
    assert job.finished_at is not None  # noqa: S101 (results are ready)
    return Origin(job.purpose, job.finished_at, _unique(found))


def _from_lookup(
    repo: CaseRepository,
    principal: Principal,
    *,
    seq: int,
    token: str,
    stored: bytes,
    codes: list[str],
    keys: AuditKeys,
) -> Origin:
    entry = repo.lookup_entry(seq)
    if (
        entry is None
        or entry[0] != principal.code
        or entry[1] != LOOKUP_ROUTE
        or entry[3].get("status") != 200
    ):
        raise NotFound("no such lookup of yours", code="lookup_not_found")
    answered = set(entry[3].get("flagged") or ())
    if any(keys.answer(token, code) not in answered for code in codes):
        raise _not_in_result("lookup's answer")
    found = [Found(*row) for row in repo.current_assertions(stored, codes)]
    missing = set(codes) - {f.code for f in found}
    if missing:
        raise Conflict(
            f"no current snapshot asserts {', '.join(sorted(missing))} of this token any more; "
            "look it up again",
            code="flag_no_longer_current",
        )
    return Origin(str(entry[3]["purpose"]), entry[2], _unique(found))


def _date(value: str) -> date:
    return date.fromisoformat(value)


def _unique(found: list[Found]) -> list[Found]:
    return sorted(set(found), key=lambda f: (f.code, f.source, f.as_of, f.provider_id))


# --- moving --------------------------------------------------------------------------------


def own_case(session: Session, principal: Principal, case_id: str, *, lock: bool = False) -> Case:
    case = CaseRepository(session).get(case_id, for_update=lock)
    # Another agency's case is "not found", as its jobs are: no hint that it exists.
    if case is None or case.agency_id != principal.agency_id:
        raise NotFound("no such case", code="case_not_found")
    return case


def _check_reason(to: CaseState, reason: str | None) -> None:
    wanted = REASONS.get(to)
    if wanted is None:
        if reason is not None:
            raise UnprocessableEntity(
                f"a move to {to.value} takes no reason", code="invalid_reason"
            )
        return
    allowed = list(wanted)
    if reason not in allowed:
        raise UnprocessableEntity(
            f"a move to {to.value} needs a reason, one of {', '.join(allowed)}",
            code="invalid_reason",
        )


def check_move(
    state: CaseState,
    to: CaseState,
    reason: str | None,
    *,
    response_due_at: datetime | None,
    now: datetime,
) -> None:
    """The rules of a move, pure: raises the refusal (with its code) or returns. ``state`` is
    the case's state as the rules read it (:func:`state_of`)."""
    _check_reason(to, reason)
    if state is S.closed:
        raise Conflict("the case is closed; nothing may follow", code="case_closed")
    if state is S.lapsed:
        raise Conflict(
            "the indication lapsed, not taken up in time; it may not be acted on",
            code="case_lapsed",
        )
    if to is S.decided and state in (S.indication, S.verifying):
        raise Conflict("no decision before the indication is verified", code="not_verified")
    if to not in NEXT[state]:
        raise Conflict(f"a case {state.value} cannot become {to.value}", code="illegal_transition")
    response_pending = state is S.confirmed or (
        state is S.notified and response_due_at is not None and now < response_due_at
    )
    if to is S.decided and reason == Decision.upheld and response_pending:
        raise Conflict(
            "an adverse decision waits for the person's response or the end of the response period",
            code="response_not_due",
        )


def transition(
    session: Session,
    principal: Principal,
    case_id: str,
    move: TransitionIn,
    *,
    rules: CaseRules,
    now: datetime,
) -> tuple[Case, CaseState]:
    """Move the case, or refuse with a code and change nothing. Returns the case and the state
    it was in."""
    require_end_user(principal)
    case = own_case(session, principal, case_id, lock=True)
    to = move.to
    state = state_of(case, now)
    check_move(state, to, move.reason, response_due_at=case.response_due_at, now=now)
    repo = CaseRepository(session)
    if to in (S.confirmed, S.refuted):
        case.verification = to.value
        case.reason = move.reason
        case.verified_at = now
        _count(repo, case, to, move.reason, now)
    elif to is S.notified:
        days = repo.notice_days(case.purpose) or rules.notice_days
        case.notice_days = days
        case.notified_at = now
        case.response_due_at = now + timedelta(days=days)
    elif to is S.responded:
        case.responded_at = now
    elif to is S.decided:
        case.decision = move.reason
        case.decided_at = now
    elif to is S.closed:
        case.closed_at = now
    case.state = to.value
    case.updated_at = now
    repo.add_event(
        CaseEvent(
            case_id=case.id,
            at=now,
            from_state=state.value,
            to_state=to.value,
            reason=move.reason,
            end_user=principal.end_user,
        )
    )
    session.flush()
    return case, state


def _count(
    repo: CaseRepository, case: Case, outcome: CaseState, reason: str | None, now: datetime
) -> None:
    """One more for each provider whose flag the case was on; once per flag for the
    consumer's rates (the first provider's row), however many providers asserted it."""
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for flag in sorted(repo.flags([case.id])[case.id], key=lambda f: (f.code, f.provider_id)):
        rows.setdefault(
            (flag.provider_id, flag.code),
            {
                "provider_id": flag.provider_id,
                "consumer_id": case.agency_id,
                "flag": flag.code,
                "month": now.strftime("%Y-%m"),
                "outcome": outcome.value,
                "reason": reason or "",
                "source": flag.source,
                "indications": int(not any(code == flag.code for _, code in rows)),
            },
        )
    repo.count_outcome(list(rows.values()))


def lapse_due(session: Session, now: datetime, limit: int = 1000) -> list[Case]:
    """Record as lapsed the indications past their lapse time; the caller audits each."""
    repo = CaseRepository(session)
    cases = list(repo.lapsing(now, limit))
    for case in cases:
        case.state = S.lapsed.value
        case.closed_at = case.lapses_at
        case.updated_at = now
        repo.add_event(
            CaseEvent(
                case_id=case.id, at=now, from_state=S.indication.value, to_state=S.lapsed.value
            )
        )
    session.flush()
    return cases


def set_notice_days(session: Session, purpose: str, days: int) -> None:
    """The operator's response period for a purpose's notices (``matchhub purposes notice``);
    cases notified from now on get it, those already notified keep theirs."""
    if session.get(Purpose, purpose) is None:
        raise NotFound(f"no purpose {purpose!r}", code="purpose_not_found")
    if not 1 <= days <= MAX_NOTICE_DAYS:
        raise UnprocessableEntity(
            f"a notice period is 1 to {MAX_NOTICE_DAYS} days", code="invalid_notice_period"
        )
    CaseRepository(session).set_notice_days(purpose, days)


# --- reading -------------------------------------------------------------------------------


def describe(session: Session, case: Case, now: datetime, *, history: bool = False) -> CaseOut:
    repo = CaseRepository(session)
    flags = repo.flags([case.id])[case.id]
    return _out(case, flags, now, repo.history(case.id) if history else None)


def _out(
    case: Case, flags: list[CaseFlag], now: datetime, events: Sequence[CaseEvent] | None = None
) -> CaseOut:
    state = state_of(case, now)
    return CaseOut(
        id=case.id,
        state=state,
        purpose=case.purpose,
        job=case.job_id,
        lookup=case.lookup_seq,
        flags=[CaseFlagOut(code=f.code, source=f.source, as_of=f.as_of) for f in flags],
        verification=case.verification,
        reason=case.reason,
        decision=case.decision,
        opened_by=case.opened_by,
        opened_at=case.opened_at,
        lapses_at=case.lapses_at if state in (S.indication, S.lapsed) else None,
        notice_days=case.notice_days,
        notified_at=case.notified_at,
        response_due_at=case.response_due_at,
        responded_at=case.responded_at,
        decided_at=case.decided_at,
        closed_at=case.closed_at if state is not S.lapsed else case.lapses_at,
        updated_at=case.updated_at,
        history=None
        if events is None
        else [
            CaseEventOut(
                at=e.at,
                from_state=CaseState(e.from_state) if e.from_state else None,
                to=CaseState(e.to_state),
                reason=e.reason,
                end_user=e.end_user,
            )
            for e in events
        ],
    )


def list_cases(
    session: Session,
    principal: Principal,
    now: datetime,
    *,
    state: CaseState | None,
    flag: str | None,
    due_before: datetime | None,
    due_after: datetime | None,
    limit: int,
    offset: int,
) -> CaseList:
    repo = CaseRepository(session)
    cases = repo.listing(
        principal.agency_id,
        now,
        state=state,
        flag=flag,
        due_before=due_before,
        due_after=due_after,
        limit=limit + 1,
        offset=offset,
    )
    more = len(cases) > limit
    cases = cases[:limit]
    flags = repo.flags([c.id for c in cases])
    return CaseList(
        cases=[_out(c, flags[c.id], now) for c in cases],
        next_offset=offset + limit if more else None,
    )


# --- feedback ------------------------------------------------------------------------------

OUTCOMES: tuple[tuple[str, str | None], ...] = (
    ("confirmed", None),
    *(("refuted", r.value) for r in RefutedReason),
)


def feedback(session: Session, principal: Principal, rules: CaseRules) -> FeedbackOut:
    repo = CaseRepository(session)
    if principal.kind in PROVIDER_KINDS:
        return _provider_feedback(repo, principal, rules.feedback_threshold)
    if principal.kind is AgencyKind.welfare:
        return _consumer_feedback(repo, principal, rules.feedback_threshold)
    raise NotFound("no feedback for this agency", code="no_feedback")  # pragma: no cover


def _provider_feedback(repo: CaseRepository, principal: Principal, threshold: int) -> FeedbackOut:
    """Every outcome of each (month, flag) that has any, small counts suppressed (zero too, so
    a missing cell tells nothing); no totals, so no suppressed cell is found by subtraction."""
    counts: dict[tuple[str, str], dict[tuple[str, str | None], int]] = defaultdict(dict)
    for month, flag, result, why, count in repo.provider_counts(principal.agency_id):
        counts[(month, flag)][(result, why or None)] = count
    cells = []
    for (month, flag), found in sorted(counts.items()):
        for outcome, reason in OUTCOMES:
            n = found.get((outcome, reason), 0)
            shown = n >= threshold
            cells.append(
                FeedbackCell(
                    month=month,
                    flag=flag,
                    outcome=outcome,
                    reason=reason,
                    count=n if shown else None,
                    suppressed=not shown,
                )
            )
    return FeedbackOut(role="provider", threshold=threshold, cells=cells)


def _consumer_feedback(repo: CaseRepository, principal: Principal, threshold: int) -> FeedbackOut:
    per_flag: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    per_source: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    for flag, source, outcome, reason, n in repo.consumer_counts(principal.agency_id):
        per_flag[flag][(outcome, reason)] += n
        per_source[source][(outcome, reason)] += n
    return FeedbackOut(
        role="consumer",
        threshold=threshold,
        per_flag=[_rate(k, v) for k, v in sorted(per_flag.items())],
        per_source=[_rate(k, v) for k, v in sorted(per_source.items())],
    )


def _rate(key: str, counts: dict[tuple[str, str], int]) -> ConfirmationRate:
    confirmed = sum(n for (o, _), n in counts.items() if o == "confirmed")
    by_reason = {r: n for (o, r), n in sorted(counts.items()) if o == "refuted"}
    refuted = sum(by_reason.values())
    total = confirmed + refuted
    return ConfirmationRate(
        key=key,
        confirmed=confirmed,
        refuted=refuted,
        refuted_by_reason=by_reason,
        rate=round(confirmed / total, 4) if total else None,
    )
