from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from matchhub.identity.models import Agency, Certificate


class IdentityRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def certificate_by_fingerprint(self, fingerprint: str) -> Certificate | None:
        stmt = (
            select(Certificate)
            .options(joinedload(Certificate.agency))
            .where(Certificate.fingerprint == fingerprint)
        )
        return self.session.scalars(stmt).one_or_none()

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
