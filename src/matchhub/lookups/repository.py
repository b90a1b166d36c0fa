from __future__ import annotations

from collections.abc import Collection
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from matchhub.identity.models import Agency
from matchhub.uploads.models import Snapshot, roster_rows, snapshot_rows


class LookupRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def current_roster(self, agency_id: int) -> Snapshot | None:
        stmt = select(Snapshot).where(
            Snapshot.agency_id == agency_id, Snapshot.kind == "roster", Snapshot.state == "current"
        )
        return self.session.scalars(stmt).one_or_none()

    def on_roster(self, roster_id: int, tokens: Collection[bytes]) -> set[bytes]:
        stmt = select(roster_rows.c.token).where(
            roster_rows.c.snapshot_id == roster_id, roster_rows.c.token.in_(list(tokens))
        )
        return {bytes(t) for t in self.session.scalars(stmt)}

    def flags(
        self, tokens: Collection[bytes], flag_codes: Collection[str]
    ) -> list[tuple[bytes, str, str, date]]:
        """(token, flag, asserting kind, snapshot date) from current snapshots only."""
        if not tokens or not flag_codes:
            return []
        stmt = (
            select(snapshot_rows.c.token, Snapshot.flag_code, Agency.kind, Snapshot.as_of)
            .join(Snapshot, Snapshot.id == snapshot_rows.c.snapshot_id)
            .join(Agency, Agency.id == Snapshot.agency_id)
            .where(
                snapshot_rows.c.token.in_(list(tokens)),
                Snapshot.state == "current",
                Snapshot.kind == "flag",
                Snapshot.flag_code.in_(list(flag_codes)),
            )
        )
        return [(bytes(t), str(f), str(k), d) for t, f, k, d in self.session.execute(stmt).all()]
