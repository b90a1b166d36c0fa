from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from matchhub.identity.scopes import Scope
from matchhub.protocol.kinds import AgencyKind


class Principal(BaseModel):
    """The verified caller of one request."""

    model_config = ConfigDict(frozen=True)

    agency_id: int
    code: str
    kind: AgencyKind
    name: str
    scopes: frozenset[Scope]
    certificate_fingerprint: str
    certificate_serial: str
    end_user: str | None = None
    """The staff member acting through the agency's desk (``Matchhub-End-User``): a
    pseudonymous id the desk gives each user, never a name. Consumers and auditors only."""


class WhoAmI(BaseModel):
    code: str
    kind: AgencyKind
    name: str
    scopes: list[Scope]
    certificate_fingerprint: str
    certificate_serial: str
