from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class OpenJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: str | None = Field(default=None, description="Required: the stated purpose.")
    flags: list[str] | None = Field(
        default=None, max_length=64, description="A subset of the flags granted for the purpose."
    )


class JobOut(BaseModel):
    id: str
    state: Literal["queued", "running", "succeeded", "failed"]
    purpose: str
    flags: list[str] | None
    roster_version: int
    progress: float
    reason: str | None
    summary: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    results_expire_at: datetime | None
    results_available: bool
