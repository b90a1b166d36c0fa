from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from matchhub.protocol.tokens import TOKEN_LENGTH


class OpenUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["flags", "roster"]
    key_version: str = Field(min_length=1, max_length=64)
    flags: list[str] = Field(default_factory=list, max_length=64)
    expected_rows: int = Field(ge=0, le=200_000_000)
    as_of: date | None = Field(
        default=None, description="The date of the extract (default: today, UTC)."
    )


class CommitUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: int = Field(ge=0)
    sha256: str = Field(
        pattern=f"^[0-9a-f]{{{TOKEN_LENGTH}}}$",
        description="Hex SHA-256 of the chunk bodies concatenated in sequence order.",
    )


class UploadOut(BaseModel):
    id: str
    kind: Literal["flags", "roster"]
    state: Literal["open", "committed", "aborted", "expired"]
    key_version: str
    flags: list[str]
    expected_rows: int
    as_of: date
    rows_received: int
    chunks_received: int
    next_seq: int = Field(
        description="The chunk the broker expects next. Lower than chunks_received after a "
        "broker restart: re-send from here; stored chunks are recognised, not stored twice."
    )
    created_at: datetime
    expires_at: datetime
    finished_at: datetime | None
    roster_version: int | None = Field(
        default=None, description="For a committed roster: the version match jobs name."
    )


class ChunkReceipt(BaseModel):
    seq: int
    rows: int
    sha256: str
    duplicate: bool = Field(description="True when this chunk had been received already.")
    next_seq: int
