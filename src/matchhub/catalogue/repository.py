from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from matchhub.catalogue.models import Flag, Grant, Purpose

_GRANTED_CODES = (
    select(Grant.flag_code)
    .distinct()
    .join(Flag, Flag.code == Grant.flag_code)
    .where(
        Grant.grantee.in_(bindparam("grantees", expanding=True)),
        Grant.purpose_code == bindparam("purpose"),
        Flag.retired_at.is_(None),
    )
    .order_by(Grant.flag_code)
)


_LIVE_GRANTS = (
    select(Grant.grantee, Grant.purpose_code, Grant.flag_code)
    .join(Flag, Flag.code == Grant.flag_code)
    .where(Flag.retired_at.is_(None))
)


class CatalogueRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def flags(self, *, include_retired: bool = False) -> Sequence[Flag]:
        stmt = select(Flag).order_by(Flag.code)
        if not include_retired:
            stmt = stmt.where(Flag.retired_at.is_(None))
        return self.session.scalars(stmt).all()

    def flag(self, code: str) -> Flag | None:
        return self.session.get(Flag, code)

    def flags_by_code(self, codes: Iterable[str]) -> dict[str, Flag]:
        stmt = select(Flag).where(Flag.code.in_(list(codes)))
        return {f.code: f for f in self.session.scalars(stmt)}

    def purposes(self) -> Sequence[Purpose]:
        return self.session.scalars(select(Purpose).order_by(Purpose.code)).all()

    def purpose(self, code: str) -> Purpose | None:
        return self.session.get(Purpose, code)

    def grants(self, grantees: Iterable[str] | None = None) -> Sequence[Grant]:
        stmt = select(Grant).order_by(Grant.grantee, Grant.flag_code, Grant.purpose_code)
        if grantees is not None:
            stmt = stmt.where(Grant.grantee.in_(list(grantees)))
        return self.session.scalars(stmt).all()

    def granted_codes(self, grantees: Iterable[str], purpose: str) -> list[str]:
        """Codes of the live (not retired) flags granted to any of ``grantees`` for
        ``purpose``, sorted."""
        params = {"grantees": list(grantees), "purpose": purpose}
        return list(self.session.connection().execute(_GRANTED_CODES, params).scalars())

    def live_grants(self) -> list[tuple[str, str, str]]:
        """Every (grantee, purpose, flag) whose flag is not retired: the lookups' view."""
        return [(g, p, f) for g, p, f in self.session.connection().execute(_LIVE_GRANTS)]

    def purpose_codes(self) -> list[str]:
        return list(self.session.connection().execute(select(Purpose.code)).scalars())

    def grant(self, grantee: str, flag_code: str, purpose_code: str) -> Grant | None:
        stmt = select(Grant).where(
            Grant.grantee == grantee,
            Grant.flag_code == flag_code,
            Grant.purpose_code == purpose_code,
        )
        return self.session.scalars(stmt).one_or_none()

    def add(self, obj: Flag | Purpose | Grant) -> None:
        self.session.add(obj)
        self.session.flush()

    def delete(self, obj: Grant) -> None:
        self.session.delete(obj)
        self.session.flush()
