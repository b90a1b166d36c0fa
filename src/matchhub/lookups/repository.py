from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Row, and_, bindparam, select
from sqlalchemy.orm import Session

from matchhub.identity.models import Agency
from matchhub.lookups.inmemory import Answers
from matchhub.lookups.models import ViewGeneration
from matchhub.uploads.models import Snapshot, roster_rows, snapshot_rows

# Built once with bound parameters: building a statement costs more than running it here.
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
_ROSTER = Snapshot.__table__.alias("roster")
# The caller's current roster is the left side, so its row comes back (once, with NULLs) even
# when none of the tokens is on it: membership, flags and the roster's version in one trip.
_ANSWERS = (
    select(
        _ROSTER.c.id,
        _ROSTER.c.key_version,
        roster_rows.c.token,
        _FLAGGED.c.flag_code,
        _FLAGGED.c.kind,
        _FLAGGED.c.as_of,
    )
    .select_from(_ROSTER)
    .outerjoin(
        roster_rows,
        and_(
            roster_rows.c.snapshot_id == _ROSTER.c.id,
            roster_rows.c.token.in_(bindparam("tokens", expanding=True)),
        ),
    )
    .outerjoin(_FLAGGED, _FLAGGED.c.token == roster_rows.c.token)
    .where(
        _ROSTER.c.agency_id == bindparam("agency_id"),
        _ROSTER.c.kind == "roster",
        _ROSTER.c.state == "current",
    )
)


class LookupRepository:
    """One statement a lookup, as Core rows: this is the case worker's hot path."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def answers(
        self, agency_id: int, tokens: Collection[bytes], flag_codes: Collection[str]
    ) -> Answers:
        """The agency's current roster, which of ``tokens`` (stored form) are on it, and each
        flag asserted of a member by a current snapshot of one of ``flag_codes``, with the
        asserting kind and the snapshot date. Tokens off the roster get nothing."""
        params = {"agency_id": agency_id, "tokens": list(tokens), "flags": list(flag_codes)}
        rows = self.session.connection().execute(_ANSWERS, params).all()
        if not rows:
            return Answers(None, None, frozenset(), [])
        members = frozenset(bytes(r.token) for r in rows if r.token is not None)
        flags = [
            (bytes(r.token), r.flag_code, r.kind, r.as_of)
            for r in rows
            if r.token is not None and r.flag_code is not None
        ]
        return Answers(rows[0].id, rows[0].key_version, members, flags)


_GENERATION = select(ViewGeneration.generation).where(ViewGeneration.id == 1)
_CURRENT = (
    select(
        Snapshot.id,
        Snapshot.agency_id,
        Snapshot.kind,
        Snapshot.flag_code,
        Snapshot.key_version,
        Snapshot.as_of,
        Snapshot.rows,
        Agency.kind.label("agency_kind"),
    )
    .join(Agency, Agency.id == Snapshot.agency_id)
    .where(Snapshot.state == "current")
    .order_by(Snapshot.id)
)


class ViewRepository:
    """What the lookups' view is loaded from, besides the identity and catalogue repositories
    and the engine's token loaders (jobs/repository.py)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def generation(self, *, hold: bool = False) -> int:
        """The view generation. With ``hold``, a share lock until the transaction ends
        (``FOR SHARE`` on PostgreSQL; SQLite's writer holds the database lock anyway): a change
        in flight then commits wholly before the read, which sees it, or after the reader's
        commit. That is what lets the audit writer say no change came between."""
        statement = _GENERATION.with_for_update(read=True) if hold else _GENERATION
        return int(self.session.connection().execute(statement).scalar_one())

    def current_snapshots(self) -> list[Row[Any]]:
        return list(self.session.connection().execute(_CURRENT))
