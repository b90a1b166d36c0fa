from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from matchhub.lookups.inmemory import Answers
from matchhub.lookups.models import ViewGeneration
from matchhub.uploads.repository import SnapshotRepository


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
        rows = SnapshotRepository(self.session).roster_answers(agency_id, tokens, flag_codes)
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


class ViewRepository:
    """The view generation, which the lookups' view is loaded at and checked against."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def generation(self, *, hold: bool = False) -> int:
        """The view generation. With ``hold``, a share lock until the transaction ends
        (``FOR SHARE`` on PostgreSQL; SQLite's writer holds the database lock anyway): a change
        in flight then commits wholly before the read, which sees it, or after the reader's
        commit. That is what lets the audit writer say no change came between."""
        statement = _GENERATION.with_for_update(read=True) if hold else _GENERATION
        return int(self.session.connection().execute(statement).scalar_one())
