from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


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
