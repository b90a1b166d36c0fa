from __future__ import annotations

from collections.abc import Collection
from datetime import date

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from matchhub.identity.models import Agency
from matchhub.uploads.models import Snapshot, roster_rows, snapshot_rows

# Built once with bound parameters: building a statement costs more than running it here.
_CURRENT_ROSTER = select(Snapshot.id, Snapshot.key_version).where(
    Snapshot.agency_id == bindparam("agency_id"),
    Snapshot.kind == "roster",
    Snapshot.state == "current",
)
_FLAGGED = (
    select(snapshot_rows.c.token, Snapshot.flag_code, Agency.kind, Snapshot.as_of)
    .join(Snapshot, Snapshot.id == snapshot_rows.c.snapshot_id)
    .join(Agency, Agency.id == Snapshot.agency_id)
    .where(
        snapshot_rows.c.token.in_(bindparam("tokens", expanding=True)),
        Snapshot.state == "current",
        Snapshot.kind == "flag",
        Snapshot.flag_code.in_(bindparam("flags", expanding=True)),
    )
    .subquery()
)
_ANSWERS = (
    select(roster_rows.c.token, _FLAGGED.c.flag_code, _FLAGGED.c.kind, _FLAGGED.c.as_of)
    .outerjoin(_FLAGGED, _FLAGGED.c.token == roster_rows.c.token)
    .where(
        roster_rows.c.snapshot_id == bindparam("roster_id"),
        roster_rows.c.token.in_(bindparam("tokens", expanding=True)),
    )
)


class LookupRepository:
    """Two statements a lookup, as Core rows: this is the case worker's hot path."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def current_roster(self, agency_id: int) -> Row[int, str] | None:
        """(id, key_version) of the agency's current roster."""
        return self.session.execute(_CURRENT_ROSTER, {"agency_id": agency_id}).one_or_none()

    def answers(
        self, roster_id: int, tokens: Collection[bytes], flag_codes: Collection[str]
    ) -> list[tuple[bytes, str | None, str | None, date | None]]:
        """One row per (roster member among ``tokens``, flag asserted of it by a current
        snapshot of one of ``flag_codes``), with the asserting kind and the snapshot date; a
        member with no such flag comes once with ``None`` in those places. Tokens off the
        roster do not come at all."""
        params = {"roster_id": roster_id, "tokens": list(tokens), "flags": list(flag_codes)}
        return [(bytes(t), f, k, d) for t, f, k, d in self.session.execute(_ANSWERS, params)]
