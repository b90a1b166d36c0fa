from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, joinedload

from matchhub.identity.models import Agency, Certificate


@dataclass(frozen=True)
class Credential:
    fingerprint: str
    serial: str
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None
    agency_id: int
    code: str
    kind: str
    name: str
    agency_revoked_at: datetime | None


_CREDENTIALS = select(
    Certificate.fingerprint,
    Certificate.serial,
    Certificate.not_before,
    Certificate.not_after,
    Certificate.revoked_at,
    Agency.id.label("agency_id"),
    Agency.code,
    Agency.kind,
    Agency.name,
    Agency.revoked_at.label("agency_revoked_at"),
).join(Agency, Agency.id == Certificate.agency_id)
_CREDENTIAL = _CREDENTIALS.where(Certificate.fingerprint == bindparam("fingerprint"))


class IdentityRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def hold(self, agency_id: int) -> None:
        """Hold the agency's row until the transaction ends, so that counting what it has
        open and adding one more is exact against another process doing the same (PostgreSQL
        ``FOR NO KEY UPDATE``, which rows referring to the agency do not wait for; SQLite has
        one writer at a time)."""
        stmt = select(Agency.id).where(Agency.id == agency_id).with_for_update(key_share=True)
        self.session.execute(stmt)

    def credential(self, fingerprint: str) -> Credential | None:
        """What authentication needs of a certificate and its agency, as one row (no ORM
        objects: this runs on every request)."""
        # Core, not the ORM's execute: the statement selects columns, and the ORM's per-call
        # compile state is a measurable share of a request here.
        params = {"fingerprint": fingerprint}
        row = self.session.connection().execute(_CREDENTIAL, params).one_or_none()
        return Credential(**row._mapping) if row is not None else None

    def credentials(self) -> list[Credential]:
        """Every certificate with its agency: what the lookups' view authenticates from."""
        rows = self.session.connection().execute(_CREDENTIALS)
        return [Credential(**row._mapping) for row in rows]

    def agency_by_code(self, code: str) -> Agency | None:
        return self.session.scalars(select(Agency).where(Agency.code == code)).one_or_none()

    def agencies(self) -> Sequence[Agency]:
        stmt = select(Agency).options(joinedload(Agency.certificates)).order_by(Agency.code)
        return self.session.scalars(stmt).unique().all()

    def revoked_certificates(self) -> Sequence[Certificate]:
        stmt = select(Certificate).where(Certificate.revoked_at.is_not(None))
        return self.session.scalars(stmt.order_by(Certificate.id)).all()

    def add(self, obj: Agency | Certificate) -> None:
        self.session.add(obj)
        self.session.flush()
