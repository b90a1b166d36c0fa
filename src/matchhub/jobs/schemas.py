from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from matchhub.catalogue.schemas import FlagCode, PurposeCode


class OpenJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: PurposeCode | None = Field(default=None, description="Required: the stated purpose.")
    flags: list[FlagCode] | None = Field(
        default=None, max_length=64, description="A subset of the flags granted for the purpose."
    )


class JobSource(BaseModel):
    """A provider snapshot the job read: which flag, from which agency kind, of which date.
    Never its size: a provider's whole snapshot, people off the caller's roster included, is
    not the consumer's to know."""

    flag: str
    source: str = Field(description="The asserting agency kind.")
    as_of: str = Field(description="The snapshot's date (ISO 8601).")


class JobSummary(BaseModel):
    """What a finished job found, about the caller's own roster only."""

    roster_version: int
    roster_size: int
    flagged_beneficiaries: int
    per_flag: dict[str, int] = Field(description="Flagged roster members per flag.")
    per_source: dict[str, int] = Field(description="Flagged roster members per agency kind.")
    sources: list[JobSource]
    seconds: float


class JobOut(BaseModel):
    id: str
    state: Literal["queued", "running", "succeeded", "failed"]
    purpose: str
    flags: list[str] | None
    roster_version: int
    progress: float
    reason: str | None
    summary: JobSummary | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    results_expire_at: datetime | None
    results_available: bool
