from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

PURPOSE_CODE = r"^[a-z][a-z0-9_]{1,63}$"
"""The shape of a purpose's code (the operator names none otherwise, service.py)."""
FLAG_CODE = r"^[a-z][a-z0-9_]*\.[a-z0-9_.]+$"
"""The shape of a flag code in a request; the catalogue's own codes are narrower (service.py)."""

# A purpose or a flag a request names: any other shape names none and is refused by the schema,
# before it can reach the request's audit entry, where a national ID sent as a purpose or a flag
# would be kept for good in an append-only log.
PurposeCode = Annotated[str, Field(pattern=PURPOSE_CODE, max_length=64)]
FlagCode = Annotated[str, Field(pattern=FLAG_CODE, max_length=64)]


class Labels(BaseModel):
    en: str
    ar: str


class Rule(BaseModel):
    text: str
    params: dict[str, Any]


class FlagOut(BaseModel):
    code: str
    asserted_by: str
    labels: Labels
    rule: Rule
    version: int
    access: Literal["assert", "read"]
    purposes: list[str]


class PurposeOut(BaseModel):
    code: str
    labels: Labels
    legal_basis: str


class Catalogue(BaseModel):
    flags: list[FlagOut]
    purposes: list[PurposeOut]
