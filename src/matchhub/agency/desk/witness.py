"""The audit office's witness of the broker's log, on every visit to the auditor's pages.

The desk keeps, in its own database, the last signed checkpoint it accepted and the verifier
key it checks every later one with: the key given at ``init --audit-key`` or, failing that, the
one the broker named on first contact (trust on first use), pinned from then on. On each visit
it fetches the broker's current checkpoint and accepts it only if

* it is signed by the pinned key for the same log (origin),
* and it extends the accepted one: a larger tree with a consistency proof that verifies
  (RFC 9162; the protocol layer's `merkle.verify_consistency`), or the same tree.

Anything else raises an **alarm**, stored with its evidence (the accepted and the refused
signed notes): a smaller tree is a rollback (the broker's database restored from an older
copy, its tail hidden), the same size with another root a fork, a proof that does not verify an
inconsistent history, a note the pinned key did not sign another key; and a record of the
accepted checkpoint that no longer verifies means the desk's own database was edited. An alarm
does not go away by itself: the accepted checkpoint stays where it was and every page shows the
alarm until a member of staff acknowledges it, giving a reason; that acknowledgement is in the
desk's log.
Acknowledging a rollback, fork or inconsistency re-anchors the witness on the checkpoint that
was refused (the auditor has taken note of the loss); acknowledging another key only clears
the alarm: the pinned key never changes from a page.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select

from matchhub.agency.desk import eventlog
from matchhub.agency.desk.broker import BrokerClient, BrokerError
from matchhub.agency.desk.db import Database
from matchhub.agency.desk.models import AuditAlarm, AuditWitnessState, utcnow
from matchhub.protocol.checkpoint import Checkpoint, CheckpointError, Reason, verify_checkpoint
from matchhub.protocol.merkle import ProofError, verify_consistency

STATE_ID = 1
MIN_ACKNOWLEDGEMENT = 10
"""Characters of the reason given when acknowledging an alarm."""
REANCHOR = frozenset(
    {Reason.ROLLBACK.value, Reason.FORK.value, Reason.INCONSISTENT.value, Reason.BAD_STATE.value}
)
_LOCK = threading.Lock()  # one witness update at a time in a desk process


class LogSource(Protocol):
    """Where the witness reads the broker's log: its checkpoint and consistency proofs."""

    def checkpoint(self) -> dict[str, Any]:
        """``GET /v1/audit/checkpoint``: ``origin``, ``size``, ``note``, ``verifier_key``."""

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        """``GET /v1/audit/proofs/consistency``: the proof's hashes."""


class BrokerLog:
    """The broker's log, read as the member of staff who is visiting."""

    def __init__(self, broker: BrokerClient) -> None:
        self.broker = broker

    def checkpoint(self) -> dict[str, Any]:
        return self.broker.json("GET", "/v1/audit/checkpoint")

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        answer = self.broker.json(
            "GET",
            "/v1/audit/proofs/consistency",
            params={"old_size": old_size, "new_size": new_size},
        )
        return [bytes.fromhex(h) for h in answer["proof"]]


@dataclass(frozen=True)
class Alarm:
    id: int
    reason: str
    message: str
    saved_size: int | None
    seen_size: int | None
    raised_at: datetime


@dataclass(frozen=True)
class WitnessView:
    """What the pages show: verified up to ``size`` entries at ``checked_at``, or the open
    alarms (red, until acknowledged), or that the broker could not be asked (``problem``)."""

    size: int | None
    checked_at: datetime | None
    alarms: list[Alarm]
    problem: str | None = None
    note: str | None = None

    @property
    def alarmed(self) -> bool:
        return bool(self.alarms)


def visit(database: Database, source: LogSource, pinned_key: str | None = None) -> WitnessView:
    """Fetch the broker's checkpoint, check it against the accepted one, and keep it or raise
    an alarm. A broker that cannot be reached is a problem shown, not an alarm."""
    with _LOCK:
        try:
            latest = source.checkpoint()
        except BrokerError as exc:
            return _view(database, problem=exc.message)
        try:
            with database.transaction() as session:
                _judge(session, source, latest, pinned_key)
        except BrokerError as exc:
            return _view(database, problem=exc.message)
        return _view(database)


def _judge(session: Any, source: LogSource, latest: dict[str, Any], pinned: str | None) -> None:
    state = session.get(AuditWitnessState, STATE_ID)
    key = state.verifier_key if state else (pinned or str(latest["verifier_key"]))
    origin = state.origin if state else str(latest["origin"])
    note = str(latest["note"])
    now = utcnow()
    try:
        new = verify_checkpoint(note, key, origin=origin)
    except CheckpointError as exc:
        _raise(
            session,
            exc.reason.value,
            f"not signed by the log's pinned key: {exc}",
            state,
            seen=None,
            refused_note=note,
        )
        return
    if state is None:
        session.add(
            AuditWitnessState(
                id=STATE_ID,
                origin=origin,
                verifier_key=key,
                note=note,
                size=new.size,
                accepted_at=now,
                checked_at=now,
            )
        )
        return
    try:
        old = verify_checkpoint(state.note, key, origin=origin)
    except CheckpointError as exc:  # the desk's own record was edited: trust nothing
        _raise(
            session,
            Reason.BAD_STATE.value,
            f"the checkpoint this desk kept does not verify: {exc}",
            state,
            seen=new.size,
            refused_note=note,
        )
        return
    problem = _compare(source, old, new)
    if problem is not None:
        _raise(session, problem[0], problem[1], state, seen=new.size, refused_note=note)
        return
    if new.size > old.size:
        state.note, state.size, state.accepted_at = note, new.size, now
    state.checked_at = now


def _compare(source: LogSource, old: Checkpoint, new: Checkpoint) -> tuple[str, str] | None:
    if new.size < old.size:
        return (
            Reason.ROLLBACK.value,
            f"the log rolled back from {old.size} to {new.size} entries "
            "(restored from an older copy, or its tail hidden)",
        )
    if new.size == old.size:
        if new.root != old.root:
            return Reason.FORK.value, f"a fork: two different logs of {new.size} entries"
        return None
    try:
        verify_consistency(
            old.size, new.size, old.root, new.root, source.consistency(old.size, new.size)
        )
    except ProofError as exc:
        return (
            Reason.INCONSISTENT.value,
            f"the log of {new.size} entries does not extend the one of {old.size}: {exc}",
        )
    return None


def _raise(
    session: Any,
    reason: str,
    message: str,
    state: AuditWitnessState | None,
    *,
    seen: int | None,
    refused_note: str,
) -> None:
    already = session.scalars(
        select(AuditAlarm).where(AuditAlarm.acknowledged_at.is_(None), AuditAlarm.reason == reason)
    ).first()
    if already is not None:
        already.seen_size, already.refused_note = seen, refused_note
        return
    session.add(
        AuditAlarm(
            reason=reason,
            message=message,
            saved_size=state.size if state else None,
            seen_size=seen,
            saved_note=state.note if state else None,
            refused_note=refused_note,
            raised_at=utcnow(),
        )
    )
    eventlog.record(
        session,
        None,
        "audit.alarm",
        "alarm",
        reason=reason,
        saved_size=state.size if state else None,
        seen_size=seen,
    )


def pinned_key(database: Database) -> str | None:
    """The verifier key the witness checks every checkpoint with, once it has one."""
    with database.transaction() as session:
        state = session.get(AuditWitnessState, STATE_ID)
        return state.verifier_key if state else None


def status(database: Database, problem: str | None = None) -> WitnessView:
    """What the witness knows now, without asking the broker."""
    return _view(database, problem)


def _view(database: Database, problem: str | None = None) -> WitnessView:
    with database.transaction() as session:
        state = session.get(AuditWitnessState, STATE_ID)
        alarms = [
            Alarm(a.id, a.reason, a.message, a.saved_size, a.seen_size, a.raised_at)
            for a in session.scalars(
                select(AuditAlarm)
                .where(AuditAlarm.acknowledged_at.is_(None))
                .order_by(AuditAlarm.id)
            )
        ]
        return WitnessView(
            size=state.size if state else None,
            checked_at=state.checked_at if state else None,
            alarms=alarms,
            problem=problem,
            note=state.note if state else None,
        )


class AcknowledgeError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def acknowledge(database: Database, alarm_id: int, staff_name: str, reason: str) -> None:
    """A member of staff acknowledges an alarm, with a reason; the desk's log records it. A
    rollback, fork or inconsistency re-anchors the witness on the refused checkpoint."""
    reason = reason.strip()
    if len(reason) < MIN_ACKNOWLEDGEMENT:
        raise AcknowledgeError("audit.ack_reason")
    with _LOCK, database.transaction() as session:
        alarm = session.get(AuditAlarm, alarm_id)
        if alarm is None or alarm.acknowledged_at is not None:
            raise AcknowledgeError("audit.ack_unknown")
        alarm.acknowledged_at, alarm.acknowledged_by = utcnow(), staff_name
        alarm.acknowledgement = reason
        state = session.get(AuditWitnessState, STATE_ID)
        reanchored = False
        if state is not None and alarm.reason in REANCHOR and alarm.refused_note:
            refused = verify_checkpoint(alarm.refused_note, state.verifier_key, origin=state.origin)
            state.note, state.size = alarm.refused_note, refused.size
            state.accepted_at = state.checked_at = utcnow()
            reanchored = True
        eventlog.record(
            session,
            staff_name,
            "audit.alarm_acknowledged",
            alarm=alarm.id,
            reason=alarm.reason,
            saved_size=alarm.saved_size,
            seen_size=alarm.seen_size,
            reanchored=reanchored,
        )
