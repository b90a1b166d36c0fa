from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class EntryOut(BaseModel):
    seq: int
    created_at: datetime
    kind: str
    agency: str | None
    route: str | None
    end_user: str | None = Field(
        default=None, description="The staff member the agency's desk named, if any."
    )
    leaf_hash: str = Field(description="Hex of the RFC 9162 leaf hash of `body`.")
    body: str = Field(description="The canonical JSON the leaf hash is computed over.")
    entry: dict[str, Any] = Field(description="`body`, parsed.")


class EntriesOut(BaseModel):
    entries: list[EntryOut]
    next_after: int | None = Field(description="Pass as `after` for the next page.")


class CheckpointOut(BaseModel):
    origin: str
    size: int
    root: str
    note: str = Field(description="The C2SP signed note (tlog-checkpoint).")
    verifier_key: str = Field(
        description="The log's verifier key; auditors should pin their own copy."
    )


class InclusionOut(BaseModel):
    seq: int
    tree_size: int
    leaf_hash: str
    root: str
    proof: list[str]


class ConsistencyOut(BaseModel):
    old_size: int
    new_size: int
    old_root: str
    new_root: str
    proof: list[str]


class RequestCount(BaseModel):
    day: str = Field(description="The local day (YYYY-MM-DD) at `utc_offset_minutes`.")
    agency: str | None
    end_user: str | None
    route: str | None
    outcome: str | None
    error: str | None
    purpose: str | None
    count: int


class HourCount(BaseModel):
    weekday: int = Field(description="ISO weekday, local: 1 is Monday, 7 is Sunday.")
    hour: int = Field(description="Local hour, 0 to 23.")
    agency: str | None
    end_user: str | None
    count: int = Field(description="Accepted lookups.")


class PeopleCount(BaseModel):
    agency: str | None
    end_user: str | None
    count: int = Field(description="People looked up in accepted lookups.")


class WidelyLookedUp(BaseModel):
    subject: str = Field(description="The person's keyed subject digest (never a token).")
    staff: list[str] = Field(description="The staff members (end users) who looked them up.")
    count: int = Field(description="Accepted lookups of the person.")


class ActivityOut(BaseModel):
    first_seq: int
    stop_seq: int = Field(description="The period is the entries from first_seq to before this.")
    requests: list[RequestCount]
    hours: list[HourCount]
    people: list[PeopleCount]
    widely: list[WidelyLookedUp]
