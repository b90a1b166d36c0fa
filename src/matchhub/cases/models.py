"""Cases, their flags, their history and the feedback counts.

A case holds only the re-keyed token, flag codes, sources, as-of dates, states, deadlines,
reason codes and end-user ids: no names, no free text (the desk keeps its notes). Its state is
one string, held to the states of :class:`CaseState` by a CHECK constraint.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from matchhub.kit.models import Base, UTCDateTime


class CaseState(StrEnum):
    indication = "indication"
    verifying = "verifying"
    confirmed = "confirmed"
    refuted = "refuted"
    notified = "notified"
    responded = "responded"
    decided = "decided"
    closed = "closed"
    lapsed = "lapsed"


class RefutedReason(StrEnum):
    not_the_person = "not_the_person"
    source_outdated = "source_outdated"
    rule_not_met = "rule_not_met"
    other = "other"


class Decision(StrEnum):
    upheld = "upheld"
    withdrawn = "withdrawn"


def _one_of(column: str, values: type[StrEnum]) -> str:
    return "{} IN ({})".format(column, ", ".join(f"'{v.value}'" for v in values))


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_agency_state", "agency_id", "state", "opened_at"),
        Index("ix_cases_state_closed", "state", "closed_at"),
        CheckConstraint(_one_of("state", CaseState), name="state"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    purpose: Mapped[str] = mapped_column(ForeignKey("purposes.code"))
    job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    lookup_seq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # The re-keyed token (keystore/rekey.py), as uploads store it: never the wire token.
    token: Mapped[bytes] = mapped_column(LargeBinary(16), index=True)
    state: Mapped[str] = mapped_column(String(16))
    verification: Mapped[str | None] = mapped_column(String(16), default=None)
    reason: Mapped[str | None] = mapped_column(String(32), default=None)
    decision: Mapped[str | None] = mapped_column(String(16), default=None)
    opened_by: Mapped[str | None] = mapped_column(String(64), default=None)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lapses_at: Mapped[datetime] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    notice_days: Mapped[int | None] = mapped_column(Integer, default=None)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CaseFlag(Base):
    """One flag the case was opened on, with the source that asserted it."""

    __tablename__ = "case_flags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))  # the asserting agency's kind
    as_of: Mapped[date] = mapped_column(Date)
    # Which provider asserted it: for its feedback counts, never shown to the consumer.
    provider_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))


class CaseEvent(Base):
    """One step of a case's history: who (end-user id) moved it from what to what, and when."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32), default=None)
    end_user: Mapped[str | None] = mapped_column(String(64), default=None)


class CaseNoticePeriod(Base):
    """The operator's notice period for a purpose (``matchhub purposes notice``); a purpose
    without one gets ``MATCHHUB_CASE_NOTICE_DAYS``."""

    __tablename__ = "case_notice_periods"

    purpose: Mapped[str] = mapped_column(ForeignKey("purposes.code"), primary_key=True)
    days: Mapped[int] = mapped_column(Integer)


class FeedbackCount(Base):
    """How many of a provider's indications a consumer confirmed or refuted (by reason) in a
    month: counted when the verification is recorded, so they outlive the cases' retention."""

    __tablename__ = "case_feedback"

    provider_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), primary_key=True)
    consumer_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), primary_key=True)
    flag: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)  # confirmed | refuted
    reason: Mapped[str] = mapped_column(String(32), primary_key=True)  # "" when confirmed
    source: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer)
    # The same indications counted once per case and flag: a flag two banks both assert is
    # one indication to the consumer, so only the first provider's row counts it here.
    indications: Mapped[int] = mapped_column(Integer)
