"""The cases' wire contract (docs/cases.md), kept apart from the ORM."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from matchhub.cases.models import CaseState
from matchhub.catalogue.schemas import FlagCode

CASE_ID = r"^[0-9a-f]{32}$"
JOB_ID = r"^[0-9a-f]{32}$"
REASON = r"^[a-z][a-z_]{0,31}$"
"""A reason code's shape: a value of any other (a name, an ID) is refused before the log."""


class OpenCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job: str | None = Field(
        default=None, pattern=JOB_ID, description="A match job of the caller's (its id)."
    )
    lookup: int | None = Field(
        default=None,
        ge=0,
        le=2**63 - 1,
        strict=True,
        description="A lookup of the caller's: the `reference` its answer gave (the audit "
        "sequence number of the lookup).",
    )
    token: str = Field(
        max_length=128, description="The wire token (64 lowercase hex), as the result gave it."
    )
    flags: list[FlagCode] = Field(
        min_length=1,
        max_length=64,
        description="Flag codes the result gave this token: the case is opened on them.",
    )


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: CaseState
    reason: str | None = Field(
        default=None,
        pattern=REASON,
        description="For `refuted`: not_the_person, source_outdated, rule_not_met or other. "
        "For `decided`: upheld or withdrawn. Nothing for the other states.",
    )


class CaseFlagOut(BaseModel):
    code: str
    source: str = Field(description="The kind of agency that asserted it.")
    as_of: date = Field(description="The date of the snapshot it came from.")


class CaseEventOut(BaseModel):
    at: datetime
    from_state: CaseState | None = Field(description="None for the opening.")
    to: CaseState
    reason: str | None
    end_user: str | None = Field(description="The staff member's pseudonymous id, if named.")


class CaseOut(BaseModel):
    id: str
    state: CaseState = Field(
        description="An indication past its `lapses_at` reads `lapsed`, whether or not the "
        "scheduled pass has recorded it yet."
    )
    purpose: str
    job: str | None
    lookup: int | None
    flags: list[CaseFlagOut]
    verification: Literal["confirmed", "refuted"] | None
    reason: str | None = Field(description="The reason of a refutation.")
    decision: Literal["upheld", "withdrawn"] | None
    opened_by: str | None
    opened_at: datetime
    lapses_at: datetime | None = Field(description="While an indication: when it lapses.")
    notice_days: int | None
    notified_at: datetime | None
    response_due_at: datetime | None
    responded_at: datetime | None
    decided_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime
    history: list[CaseEventOut] | None = Field(
        default=None, description="Every step, oldest first (`GET /v1/cases/{id}` only)."
    )


class CaseList(BaseModel):
    cases: list[CaseOut]
    next_offset: int | None = Field(description="Ask again with this offset for more.")


class FeedbackCell(BaseModel):
    month: str = Field(description="YYYY-MM, the month the verification was recorded.")
    flag: str
    outcome: Literal["confirmed", "refuted"]
    reason: str | None = Field(description="For `refuted`: the reason code.")
    count: int | None = Field(description="None when suppressed.")
    suppressed: bool = Field(description="True when the count is below the threshold.")


class ConfirmationRate(BaseModel):
    key: str = Field(description="The flag code, or the source agency kind.")
    confirmed: int
    refuted: int
    refuted_by_reason: dict[str, int]
    rate: float | None = Field(description="confirmed / (confirmed + refuted).")


class FeedbackOut(BaseModel):
    role: Literal["provider", "consumer"]
    threshold: int = Field(description="Counts below this are suppressed (providers).")
    cells: list[FeedbackCell] | None = Field(
        default=None,
        description="Providers: for its own flags, per month and flag, confirmed and refuted "
        "by reason; every outcome of a month and flag listed, small ones suppressed, no totals.",
    )
    per_flag: list[ConfirmationRate] | None = Field(default=None, description="Consumers.")
    per_source: list[ConfirmationRate] | None = Field(default=None, description="Consumers.")
