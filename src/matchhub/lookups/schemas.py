from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from matchhub.catalogue.schemas import PurposeCode


class LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: PurposeCode | None = Field(default=None, description="Required: the stated purpose.")
    tokens: list[str] = Field(max_length=100_000)
    key_version: str | None = Field(
        default=None, description="If given, must be the key version of the caller's roster."
    )


class FlagAnswer(BaseModel):
    code: str
    source: str = Field(description="The kind of agency that asserts it.")
    as_of: date = Field(description="The date of the snapshot.")


class LookupResult(BaseModel):
    token: str
    on_roster: bool
    flags: list[FlagAnswer]


class LookupResponse(BaseModel):
    purpose: str
    roster_version: int | None
    results: list[LookupResult]
    reference: int | None = Field(
        default=None,
        description="The audit sequence number of this lookup: give it as `lookup` to open a "
        "case from this answer (POST /v1/cases). None when the audit log is off.",
    )
