"""Cases at the desk: a flag is an indication; the case is how it is verified and decided.

The broker holds the case (its re-keyed token, flag codes, states, deadlines, reason codes and
who moved it, by pseudonym) and enforces the order of its steps. The desk holds what only the
ministry may: which member of staff works the case, where the person is in the roster's index
(version and row: the name and IDs are read from there when a page or the notice letter needs
them), and the staff's free-text notes, which never leave the desk.

Rules enforced here, before the broker is asked:

- only staff with ``casework`` move a case; a **caseworker** moves only the cases a supervisor
  assigned to them (or that they opened from their own lookup); a supervisor moves any;
- a supervisor assigns cases to active caseworkers (or supervisors);
- a refuted case names one of the broker's reason codes, a decision ``upheld`` or
  ``withdrawn``; anything else is refused without a request.

Each step is one request to the broker as the acting member of staff (``Matchhub-End-User``);
the broker's refusal (a 409 with its code: no decision before verification, no adverse
decision before the response is due, a lapsed or closed case) comes back as `CaseError` with
that code, and the desk's mirror of the case is refreshed from the broker.

The wire tokens: a case is opened with the token the desk computed for the person when it
registered the roster (the index's ``tokens.npy``); it is sent to the broker and never stored
in the desk's database, shown, or logged.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Select, and_, select
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Session

from matchhub.agency.desk import accounts, eventlog
from matchhub.agency.desk.accounts import Permission, Role, Staff
from matchhub.agency.desk.broker import BrokerClient, BrokerError
from matchhub.agency.desk.models import FINISHED_STATES, Case, CaseNote, Match, User, utcnow
from matchhub.agency.desk.roster import RosterIndex
from matchhub.agency.desk.service import Desk, DeskError

STATES = (
    "indication",
    "verifying",
    "confirmed",
    "refuted",
    "notified",
    "responded",
    "decided",
    "closed",
    "lapsed",
)
REFUTE_REASONS = ("not_the_person", "source_outdated", "rule_not_met", "other")
DECISIONS = ("upheld", "withdrawn")
NEXT: dict[str, tuple[str, ...]] = {
    "indication": ("verifying",),
    "verifying": ("confirmed", "refuted"),
    "confirmed": ("notified", "decided"),
    "refuted": ("closed",),
    "notified": ("responded", "decided"),
    "responded": ("decided",),
    "decided": ("closed",),
}
"""The steps the pages offer from each state (the broker decides whether one is allowed)."""
NOTICE_STATES = ("notified", "responded", "decided", "closed")
LAPSING_WARNING = timedelta(days=7)
"""An indication this close to lapsing stands out in the queue."""
MAX_OPEN_AT_ONCE = 200
QUEUE_PAGE = 100
MAX_NOTE = 4000
_UNREACHABLE = ("unreachable", "tls")


class CaseError(Exception):
    """A case step refused. ``code`` is the desk's (``not_yours``, ``not_found``...) or the
    broker's stable error code; ``message`` is safe to show (never a token or an ID)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


@dataclass
class CaseView:
    """A case as a page shows it: the desk's row, the person from the roster, the assignee's
    name, and whether it stands out."""

    case: Case
    person: dict[str, str] | None
    assignee: str | None
    attention: str | None  # "overdue", "lapsing" or None
    history: list[dict[str, Any]] = field(default_factory=list)
    notes: list[CaseNote] = field(default_factory=list)

    @property
    def next_steps(self) -> tuple[str, ...]:
        return NEXT.get(self.case.state, ())

    @property
    def decisions(self) -> tuple[str, ...]:
        """Before the notice, a confirmed indication may only be withdrawn."""
        return ("withdrawn",) if self.case.state == "confirmed" else DECISIONS


@dataclass
class Opened:
    """What opening cases from a list did: the desk's case numbers, the people skipped (a case
    is already open for them) and the broker's refusals (list position, code)."""

    opened: list[int] = field(default_factory=list)
    skipped: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Listed:
    """A beneficiary of a match's list: position in the list, the person, their flags."""

    position: int
    person: dict[str, str]
    flags: list[dict[str, str]]
    case: int | None  # the desk's open case for them, if any


# --- reading -------------------------------------------------------------------------------


def attention(case: Case, now: datetime) -> str | None:
    """``overdue``: the response period is over and no decision is recorded; ``lapsing``: an
    indication not taken up that lapses within `LAPSING_WARNING`."""
    if case.state in ("notified", "responded") and case.response_due and case.response_due <= now:
        return "overdue"
    if case.state == "indication" and case.lapses_at and case.lapses_at - now <= LAPSING_WARNING:
        return "lapsing"
    return None


def queue(
    desk: Desk,
    *,
    state: str = "",
    governorate: str = "",
    flag: str = "",
    assignee: int | None = None,
    now: datetime | None = None,
    offset: int = 0,
    limit: int = QUEUE_PAGE,
) -> list[CaseView]:
    """The cases, filtered; those that need attention first (overdue, then lapsing), then the
    most recent; a page of `limit` from `offset`. The order is the database's, so every page
    agrees with `attention`."""
    now = now or utcnow()
    stmt: Select[tuple[Case]] = select(Case)
    if state == "open":
        stmt = stmt.where(Case.state.not_in(FINISHED_STATES))
    elif state in STATES:
        stmt = stmt.where(Case.state == state)
    if governorate:
        stmt = stmt.where(Case.governorate == governorate)
    if flag:
        stmt = stmt.where(Case.flag_codes.contains(f";{flag};", autoescape=True))
    if assignee is not None:
        stmt = stmt.where(Case.assigned_to == assignee)
    first = sql_case(
        (and_(Case.state.in_(("notified", "responded")), Case.response_due <= now), 0),
        (and_(Case.state == "indication", Case.lapses_at <= now + LAPSING_WARNING), 1),
        else_=2,
    )
    stmt = stmt.order_by(first, Case.id.desc()).offset(max(offset, 0)).limit(limit)
    with desk.db.transaction() as session:
        rows = list(session.scalars(stmt))
        names = _names(session)
    return [
        CaseView(c, _person(desk, c), names.get(c.assigned_to or 0), attention(c, now))
        for c in rows
    ]


def governorates(desk: Desk) -> list[str]:
    with desk.db.transaction() as session:
        return sorted(set(session.scalars(select(Case.governorate))))


def view(desk: Desk, staff: Staff, number: int, *, history: bool = True) -> CaseView:
    """One case with its notes and (from the broker, the staff named) its history."""
    with desk.db.transaction() as session:
        case = _get(session, number)
        notes = list(
            session.scalars(
                select(CaseNote).where(CaseNote.case_id == number).order_by(CaseNote.id)
            )
        )
        names = _names(session)
        pseudonyms = {u.pseudonym: u.name for u in accounts.users(session)}
    steps: list[dict[str, Any]] = []
    if history:
        try:
            with desk.broker(staff) as broker:
                answer = broker.case(case.broker_id)
            case = _save(desk, number, answer)
            steps = [_step(s, pseudonyms) for s in answer.get("history", [])]
        except BrokerError:
            steps = []  # the page says the broker could not answer; the mirror stays
    return CaseView(
        case,
        _person(desk, case),
        names.get(case.assigned_to or 0),
        attention(case, utcnow()),
        steps,
        notes,
    )


def listed(desk: Desk, match_number: int, *, governorate: str = "", flag: str = "") -> list[Listed]:
    """A ready match's beneficiaries, as its list holds them, with their open cases."""
    match, rows = _match_rows(desk, match_number)
    index = _index(desk, int(match.roster_version or 0))
    with desk.db.transaction() as session:
        open_for = {
            (c.roster_version, c.row): c.id
            for c in session.scalars(
                select(Case).where(
                    Case.roster_version == match.roster_version,
                    Case.state.not_in(FINISHED_STATES),
                )
            )
        }
    found: list[Listed] = []
    for position, line in enumerate(_list_lines(desk, match_number)):
        if governorate and line["governorate"] != governorate:
            continue
        flags = _line_flags(line)
        if flag and flag not in {f["code"] for f in flags}:
            continue
        row = int(rows[position])
        found.append(
            Listed(
                position,
                index.person(row),
                flags,
                open_for.get((match.roster_version, row)),
            )
        )
    return found


# --- opening -------------------------------------------------------------------------------


def open_from_match(
    desk: Desk, staff: Staff, match_number: int, positions: Iterable[int]
) -> Opened:
    """Open a case at the broker for each chosen beneficiary of a match's list (by position),
    naming the match's job; one already with an open case is skipped."""
    _require(staff, Permission.cases)
    wanted = sorted(set(positions))
    if not wanted:
        raise CaseError("none_chosen", "choose at least one beneficiary")
    if len(wanted) > MAX_OPEN_AT_ONCE:
        raise CaseError("too_many", f"at most {MAX_OPEN_AT_ONCE} cases at once")
    match, rows = _match_rows(desk, match_number)
    if wanted[0] < 0 or wanted[-1] >= len(rows):
        raise CaseError("not_found", "no such beneficiary in this match's list")
    version = int(match.roster_version or 0)
    index = _index(desk, version)
    flags_at = {}
    chosen = set(wanted)
    for position, line in enumerate(_list_lines(desk, match_number)):
        if position in chosen:
            flags_at[position] = _line_flags(line)
    outcome = Opened()
    with desk.broker(staff) as broker:
        for position in wanted:
            row = int(rows[position])
            if _open_case_for(desk, version, row) is not None:
                outcome.skipped += 1
                continue
            flags = flags_at[position]
            try:
                answer = _open_or_adopt(
                    desk,
                    broker,
                    token=bytes(index.tokens[row]).hex(),
                    flags=sorted({f["code"] for f in flags}),
                    job=match.job_id,
                )
            except BrokerError as exc:
                if exc.code in _UNREACHABLE:
                    raise CaseError(exc.code, exc.message) from None
                outcome.refused.append((position, exc.code))
                continue
            if answer is None:
                outcome.skipped += 1
                continue
            person = index.person(row)
            outcome.opened.append(
                _insert(
                    desk,
                    staff,
                    answer,
                    origin="match",
                    match_id=match.id,
                    version=version,
                    row=row,
                    governorate=person["governorate"],
                    flags=flags,
                )
            )
    desk.record(
        staff,
        "case.open",
        match=match.id,
        opened=len(outcome.opened),
        skipped=outcome.skipped,
        refused=len(outcome.refused),
    )
    return outcome


def open_from_lookup(
    desk: Desk,
    staff: Staff,
    *,
    audit_seq: int | None,
    version: int,
    row: int,
    flags: Sequence[dict[str, str]],
) -> int:
    """Open a case from a lookup's answer for the person at `row` of roster `version` (the
    lookup found them there). A caseworker's own case is assigned to them."""
    _require(staff, Permission.cases)
    if audit_seq is None:
        raise CaseError("no_lookup", "the broker did not name the lookup; look the person up again")
    granted = {f["code"] for f in desk.catalogue(staff).flags}
    if not flags or any(f.get("code") not in granted for f in flags):
        raise CaseError("invalid_flags", "the flags are not the lookup's")
    index = _index(desk, version)
    if not 0 <= row < len(index.tokens):
        raise CaseError("not_found", "no such person on the roster")
    existing = _open_case_for(desk, version, row)
    if existing is not None:
        return existing
    with desk.broker(staff) as broker:
        try:
            answer = _open_or_adopt(
                desk,
                broker,
                token=bytes(index.tokens[row]).hex(),
                flags=sorted({f["code"] for f in flags}),
                lookup=audit_seq,
            )
        except BrokerError as exc:
            raise CaseError(exc.code, exc.message) from None
    if answer is None:  # the desk holds the person's open case already
        raise CaseError("case_exists", "there is already an open case for this person")
    number = _insert(
        desk,
        staff,
        answer,
        origin="lookup",
        lookup_seq=audit_seq,
        version=version,
        row=row,
        governorate=index.person(row)["governorate"],
        flags=[{k: str(f[k]) for k in ("code", "source", "as_of")} for f in flags],
        assign=staff.id if staff.role is Role.caseworker else None,
    )
    desk.record(staff, "case.open", case=number, origin="lookup")
    return number


# --- working -------------------------------------------------------------------------------


def assign(desk: Desk, staff: Staff, numbers: Iterable[int], to: str) -> int:
    """A supervisor assigns cases to a caseworker (or a supervisor); returns how many."""
    _require(staff, Permission.assign)
    chosen = sorted(set(numbers))
    if not chosen:
        raise CaseError("none_chosen", "choose at least one case")
    with desk.db.transaction() as session:
        user = accounts.by_name(session, to)
        if user is None or user.disabled or not Staff.of(user).may(Permission.casework):
            raise CaseError("not_a_caseworker", "cases go to an active caseworker")
        cases = [_get(session, n) for n in chosen]
        for case in cases:
            if case.state in FINISHED_STATES:
                raise CaseError("case_finished", f"case {case.id} is {case.state}")
            case.assigned_to = user.id
            case.updated_at = utcnow()
        eventlog.record(session, staff.name, "case.assign", cases=len(cases), to=user.name)
    return len(chosen)


def move(desk: Desk, staff: Staff, number: int, to: str, reason: str = "") -> Case:
    """One step of a case at the broker, as `staff`; the desk's mirror follows the answer."""
    _require(staff, Permission.casework)
    with desk.db.transaction() as session:
        case = _get(session, number)
    if staff.role is Role.caseworker and case.assigned_to != staff.id:
        raise CaseError(
            "not_yours",
            "this case is assigned to another caseworker (or to no one): ask a supervisor",
        )
    if to not in STATES:
        raise CaseError("invalid_state", "no such step")
    if to == "refuted" and reason not in REFUTE_REASONS:
        raise CaseError("invalid_reason", "a refutation names its reason")
    if to == "decided" and reason not in DECISIONS:
        raise CaseError("invalid_reason", "a decision is upheld or withdrawn")
    if to not in ("refuted", "decided"):
        reason = ""
    with desk.broker(staff) as broker:
        try:
            answer = broker.transition(case.broker_id, to, reason or None)
        except BrokerError as exc:
            if exc.code not in _UNREACHABLE:
                _refresh(desk, broker, number, case.broker_id)
            desk.record(staff, "case.step", "refused", case=number, to=to, code=exc.code)
            raise CaseError(exc.code, exc.message) from None
    saved = _save(desk, number, answer)
    desk.record(staff, "case.step", case=number, to=to, reason=reason or None)
    return saved


# Bidirectional embeddings, overrides and isolates: a note holding them can show on the page
# and in the printed letter as other text than it is ("Trojan Source"). The marks (LRM, RLM,
# ALM) that Arabic text with numbers legitimately carries stay.
_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))


def clean_note(text: str) -> str:
    """A note as kept: without bidirectional controls or control characters other than line
    breaks and tabs, line breaks as ``\n``, trimmed."""
    text = text.replace("\r\n", "\n").translate(_BIDI_CONTROLS)
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc").strip()


def add_note(desk: Desk, staff: Staff, number: int, text: str) -> None:
    _require(staff, Permission.cases)
    text = clean_note(text)
    if not text:
        raise CaseError("empty_note", "a note needs some text")
    if len(text) > MAX_NOTE:
        raise CaseError("note_too_long", f"a note is at most {MAX_NOTE} characters")
    with desk.db.transaction() as session:
        _get(session, number)
        session.add(CaseNote(case_id=number, author=staff.name, text=text))
        eventlog.record(session, staff.name, "case.note", case=number)


def refresh(desk: Desk, staff: Staff, now: datetime | None = None) -> int:
    """Bring the mirror up to date where time alone changed a case at the broker: only the
    desk moves its cases, so the one change it has not seen is a lapse. When an indication
    here is past its lapse time, ask ``GET /v1/cases?state=lapsed`` once; otherwise ask
    nothing. Returns how many cases changed."""
    now = now or utcnow()
    with desk.db.transaction() as session:
        due = session.scalars(
            select(Case.id).where(Case.state == "indication", Case.lapses_at <= now).limit(1)
        ).first()
    if due is None:
        return 0
    with desk.broker(staff) as broker:
        answers = broker.cases(state="lapsed")
    with desk.db.transaction() as session:
        ours = {
            c.broker_id: c for c in session.scalars(select(Case).where(Case.state == "indication"))
        }
        changed = 0
        for answer in answers:
            case = ours.get(str(answer.get("id")))
            if case is not None and _apply(case, answer):
                changed += 1
    return changed


@dataclass(frozen=True)
class Notice:
    """What the notice letter says."""

    case: Case
    person: dict[str, str]
    flags: list[dict[str, str]]
    notified_at: datetime | None
    response_due: datetime


def notice(desk: Desk, staff: Staff, number: int) -> Notice:
    """The notice letter's content, once the notice is recorded (the broker set the date the
    response is due)."""
    shown = view(desk, staff, number, history=True)
    case = shown.case
    if case.state not in NOTICE_STATES or case.response_due is None or shown.person is None:
        raise CaseError("no_notice", "a notice is printed once it is recorded as sent")
    notified = next((s["at"] for s in reversed(shown.history) if s.get("to") == "notified"), None)
    return Notice(case, shown.person, list(case.flags), notified, case.response_due)


# --- plumbing ------------------------------------------------------------------------------


def _require(staff: Staff, permission: Permission) -> None:
    if not staff.may(permission):
        raise CaseError("forbidden", "your role does not allow this")


def _get(session: Session, number: int) -> Case:
    case = session.get(Case, number)
    if case is None:
        raise CaseError("not_found", "no such case")
    return case


def _names(session: Session) -> dict[int, str]:
    return {u.id: u.name for u in session.scalars(select(User))}


def _index(desk: Desk, version: int) -> RosterIndex:
    """The roster version's index, or a refusal the page can show: a page left open while the
    roster was refreshed past ``rosters_kept`` names a version the desk no longer holds."""
    try:
        return desk.index(version)
    except DeskError:
        raise CaseError(
            "roster_gone", f"the roster version {version} is no longer held by this desk"
        ) from None


def _person(desk: Desk, case: Case) -> dict[str, str] | None:
    try:
        return desk.index(case.roster_version).person(case.row)
    except DeskError:
        return None


def _open_case_for(desk: Desk, version: int, row: int) -> int | None:
    with desk.db.transaction() as session:
        found: int | None = session.scalars(
            select(Case.id).where(
                Case.roster_version == version,
                Case.row == row,
                Case.state.not_in(FINISHED_STATES),
            )
        ).first()
        return found


def _match_rows(desk: Desk, number: int) -> tuple[Match, np.ndarray]:
    match = desk.match(number)
    if match is None or match.state != "ready" or match.job_id is None:
        raise CaseError("not_found", "no such match, or it is not ready")
    path = desk.match_folder(number) / "rows.npy"
    if not path.exists():
        raise CaseError("match_too_old", "this match's lists predate cases: run the match again")
    return match, np.load(path)


def _list_lines(desk: Desk, number: int) -> Iterable[dict[str, str]]:
    with (desk.match_folder(number) / "beneficiaries.csv").open(
        encoding="utf-8-sig", newline=""
    ) as file:
        yield from csv.DictReader(file)


def _line_flags(line: dict[str, str]) -> list[dict[str, str]]:
    return [
        {"code": code, "source": source, "as_of": as_of}
        for code, source, as_of in zip(
            line["flags"].split(";"),
            line["sources"].split(";"),
            line["as_of"].split(";"),
            strict=True,
        )
    ]


def _open_or_adopt(
    desk: Desk,
    broker: BrokerClient,
    *,
    token: str,
    flags: list[str],
    job: str | None = None,
    lookup: int | None = None,
) -> dict[str, Any] | None:
    """Open the case at the broker. If the broker already holds an open case of ours on the
    person (``409 case_exists``: the desk stopped between the broker's answer and its own
    record of it) and the desk has no row for it, that case is adopted: its answer is returned
    to be recorded. None when the desk holds it already."""
    try:
        return broker.open_case(token=token, flags=flags, job=job, lookup=lookup)
    except BrokerError as exc:
        existing = exc.details.get("case") if exc.code == "case_exists" else None
        if not isinstance(existing, str):
            raise
    with desk.db.transaction() as session:
        held = session.scalars(select(Case.id).where(Case.broker_id == existing)).first()
    return None if held is not None else broker.case(existing)


def _insert(
    desk: Desk,
    staff: Staff,
    answer: dict[str, Any],
    *,
    origin: str,
    version: int,
    row: int,
    governorate: str,
    flags: list[dict[str, str]],
    match_id: int | None = None,
    lookup_seq: int | None = None,
    assign: int | None = None,
) -> int:
    # The broker's sources and dates are the case's (for a lookup: the snapshots current now).
    flags = [
        {"code": str(f["code"]), "source": str(f["source"]), "as_of": str(f["as_of"])}
        for f in answer.get("flags") or flags
    ]
    with desk.db.transaction() as session:
        case = Case(
            broker_id=str(answer["id"]),
            state=str(answer.get("state", "indication")),
            origin=origin,
            match_id=match_id,
            lookup_seq=lookup_seq,
            roster_version=version,
            row=row,
            governorate=governorate,
            flags=flags,
            flag_codes=";" + ";".join(sorted({f["code"] for f in flags})) + ";",
            assigned_to=assign,
            opened_by=staff.name,
        )
        _apply(case, answer)
        session.add(case)
        session.flush()
        return case.id


def _apply(case: Case, answer: dict[str, Any]) -> bool:
    """Copy the broker's answer onto the mirror; True if anything changed."""
    before = (case.state, case.reason, case.response_due, case.lapses_at)
    case.state = str(answer.get("state", case.state))
    reason = answer.get("decision") or answer.get("reason")
    case.reason = str(reason) if reason else None
    case.response_due = _when(answer.get("response_due_at"))
    case.lapses_at = _when(answer.get("lapses_at"))
    changed = before != (case.state, case.reason, case.response_due, case.lapses_at)
    if changed:
        case.updated_at = utcnow()
    return changed


def _save(desk: Desk, number: int, answer: dict[str, Any]) -> Case:
    with desk.db.transaction() as session:
        case = _get(session, number)
        _apply(case, answer)
        return case


def _refresh(desk: Desk, broker: BrokerClient, number: int, broker_id: str) -> None:
    with suppress(BrokerError):
        _save(desk, number, broker.case(broker_id))


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:  # a date: the end of that day is when it is due
        moment = moment.replace(tzinfo=utcnow().tzinfo)
    return moment


def _step(step: dict[str, Any], pseudonyms: dict[str, str]) -> dict[str, Any]:
    """A history entry with the member of staff named (the broker knows only pseudonyms)."""
    who = step.get("end_user")
    return {
        "to": step.get("to"),
        "reason": step.get("reason"),
        "at": _when(step.get("at")),
        "by": pseudonyms.get(str(who), "—") if who else "—",
    }
