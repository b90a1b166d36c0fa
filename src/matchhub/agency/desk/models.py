"""The desk's tables. Names, IDs and tokens of beneficiaries are never stored here: the log
records who did what and counts, the rosters and matches their versions, states and files."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """A member of staff. ``pseudonym`` is what the broker's audit log names (never the name);
    random, given once, never changed, never reused."""

    __tablename__ = "desk_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(2), default="ar")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sign_in: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class StaffSession(Base):
    """A signed-in browser. The cookie holds a random secret; only its SHA-256 is stored, so a
    copy of this table cannot be replayed as a cookie."""

    __tablename__ = "desk_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie
    user_id: Mapped[int] = mapped_column(ForeignKey("desk_users.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Event(Base):
    """The desk's own log: who (the staff member's name, as the ministry knows them), when,
    what, and counts or references; never a beneficiary's ID, name or token."""

    __tablename__ = "desk_events"
    __table_args__ = (Index("ix_desk_events_user", "user_name", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_name: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Roster(Base):
    """A roster registered (or being registered) at the broker from one extract."""

    __tablename__ = "desk_rosters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="running")  # running/current/...
    stage: Mapped[str] = mapped_column(String(16), default="reading")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    started_by: Mapped[str] = mapped_column(String(64))
    folder: Mapped[str | None] = mapped_column(String(200), default=None)
    version: Mapped[int | None] = mapped_column(Integer, default=None)  # the broker's
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Match(Base):
    """A collective match: the broker's job, and the lists the desk made of its results."""

    __tablename__ = "desk_matches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="running")  # running/ready/failed
    stage: Mapped[str] = mapped_column(String(16), default="submitted")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    purpose: Mapped[str] = mapped_column(String(64))
    flags: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    started_by: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(64), default=None)
    roster_version: Mapped[int | None] = mapped_column(Integer, default=None)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


FINISHED_STATES = ("closed", "lapsed")
"""A case in these states may no longer be acted on."""


class Case(Base):
    """A case the desk opened at the broker for a flagged beneficiary, mirrored here with what
    only the ministry may hold: who works it and where the person is in the roster's index
    (version and row; their name and IDs are read from the index, never copied here). The
    broker's case is the authority on the state; the desk keeps its last answer."""

    __tablename__ = "desk_cases"
    __table_args__ = (
        Index("ix_desk_cases_queue", "state", "governorate"),
        Index("ix_desk_cases_person", "roster_version", "row"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    broker_id: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32), default=None)
    origin: Mapped[str] = mapped_column(String(8))  # match / lookup
    match_id: Mapped[int | None] = mapped_column(ForeignKey("desk_matches.id"), default=None)
    lookup_seq: Mapped[int | None] = mapped_column(Integer, default=None)
    roster_version: Mapped[int] = mapped_column(Integer)
    row: Mapped[int] = mapped_column(Integer)
    governorate: Mapped[str] = mapped_column(String(64))
    flags: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    flag_codes: Mapped[str] = mapped_column(String(400))  # ";a;b;": filtered with LIKE
    assigned_to: Mapped[int | None] = mapped_column(
        ForeignKey("desk_users.id"), default=None, index=True
    )
    opened_by: Mapped[str] = mapped_column(String(64))
    response_due: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    lapses_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseNote(Base):
    """Free text about a case, typed by staff: kept only here, never sent to the broker."""

    __tablename__ = "desk_case_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("desk_cases.id"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    text: Mapped[str] = mapped_column(Text)


class AuditWitnessState(Base):
    """The audit office's witness of the broker's log (one row): the last signed checkpoint the
    desk accepted, and the verifier key it checks every later one with (pinned)."""

    __tablename__ = "desk_audit_witness"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin: Mapped[str] = mapped_column(String(200))
    verifier_key: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditAlarm(Base):
    """The broker's log failed the witness: rolled back, forked, inconsistent, or signed by
    another key. Stays until a member of staff acknowledges it (which the desk's log records);
    ``saved_note`` and ``refused_note`` are the evidence, checkable by anyone with the key."""

    __tablename__ = "desk_audit_alarms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    saved_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    seen_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    saved_note: Mapped[str | None] = mapped_column(Text, default=None)
    refused_note: Mapped[str | None] = mapped_column(Text, default=None)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), default=None)
    acknowledgement: Mapped[str | None] = mapped_column(Text, default=None)
