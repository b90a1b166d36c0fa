from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field

_ISO_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})", re.ASCII
)


def _iso_instant(value: object) -> object:
    """An instant written out in ISO 8601 with its offset (``2026-12-01T00:00:00Z``): pydantic
    alone would read ``0.5`` as seconds after 1970 and hand a naive time to a UTC column."""
    if isinstance(value, str) and not _ISO_INSTANT.fullmatch(value):
        raise ValueError("an ISO 8601 date and time with its offset, as 2026-12-01T00:00:00Z")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_iso_instant)]


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
