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
