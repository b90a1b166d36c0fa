from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from matchhub.catalogue.schemas import FlagCode
from matchhub.protocol.tokens import TOKEN_LENGTH

ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_ROWS = 200_000_000  # a snapshot's rows, at most


class OpenUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["flags", "roster"]
    key_version: str = Field(min_length=1, max_length=64)
    flags: list[FlagCode] = Field(default_factory=list, max_length=64)
    expected_rows: int = Field(ge=0, le=MAX_ROWS, strict=True)  # "12" is not a count
    as_of: date | None = Field(
        default=None,
        description="The date of the extract (default: today, UTC), as YYYY-MM-DD: from "
        "2000-01-01 to tomorrow (UTC), so an agency's date a timezone ahead is accepted.",
    )

    @field_validator("as_of", mode="before")
    @classmethod
    def _a_calendar_date(cls, value: object) -> object:
        # Not epoch seconds, not a date and time: one spelling of one day.
        if value is not None and not (isinstance(value, str) and ISO_DATE.fullmatch(value)):
            raise ValueError("as_of is a date written YYYY-MM-DD")
        return value

    @field_validator("as_of")
    @classmethod
    def _sane_date(cls, value: date | None) -> date | None:
        if value is not None and not EARLIEST_AS_OF <= value <= latest_as_of():
            raise ValueError(f"as_of must lie between {EARLIEST_AS_OF} and tomorrow (UTC)")
        return value


EARLIEST_AS_OF = date(2000, 1, 1)


def latest_as_of() -> date:
    return datetime.now(UTC).date() + timedelta(days=1)


HEX_SHA256 = f"^[0-9a-f]{{{TOKEN_LENGTH}}}$"


class CommitUpload(BaseModel):
    """At least one of the two digests. ``chunks_sha256`` is checked by any broker process;
    ``sha256`` (the first form) only by a process that received every chunk itself."""

    model_config = ConfigDict(extra="forbid")

    rows: int = Field(ge=0, le=MAX_ROWS, strict=True)
    chunks_sha256: str | None = Field(
        default=None,
        pattern=HEX_SHA256,
        description="Hex SHA-256 over the chunks' own SHA-256 digests (32 raw bytes each) "
        "concatenated in sequence order. Checked by whichever broker process takes the "
        "commit. Connectors send this.",
    )
    sha256: str | None = Field(
        default=None,
        pattern=HEX_SHA256,
        description="The first form: hex SHA-256 of the chunk bodies concatenated in sequence "
        "order. The bodies are never kept, so only a broker process that received every "
        "chunk itself can check it; elsewhere a commit carrying only this form is refused "
        "(409 digest_state_lost). Alongside chunks_sha256 it is checked where it can be.",
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
        description="The chunk the broker expects next (chunks_received while the upload is "
        "open): any broker process accepts it."
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
