"""Every query of the cases domain."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from matchhub.audit.models import AuditEntry
from matchhub.cases.models import (
    Case,
    CaseEvent,
    CaseFlag,
    CaseNoticePeriod,
    CaseState,
    FeedbackCount,
)
from matchhub.identity.models import Agency
from matchhub.jobs.models import match_result_chunks
from matchhub.uploads.models import Snapshot, SnapshotState, roster_rows, snapshot_rows


def _state_is(state: CaseState, now: datetime) -> ColumnElement[bool]:
    lapsed_now = and_(Case.state == CaseState.indication.value, Case.lapses_at <= now)
    if state is CaseState.lapsed:
        return or_(Case.state == CaseState.lapsed.value, lapsed_now)
    if state is CaseState.indication:
        return and_(Case.state == CaseState.indication.value, Case.lapses_at > now)
    return Case.state == state.value


class CaseRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, case: Case, flags: Sequence[CaseFlag], event: CaseEvent) -> None:
        self.session.add(case)
        self.session.flush()
        self.session.add_all([*flags, event])
        self.session.flush()

    def get(self, case_id: str, *, for_update: bool = False) -> Case | None:
        stmt = select(Case).where(Case.id == case_id)
        if for_update:
            stmt = stmt.with_for_update()
        return self.session.scalars(stmt).one_or_none()

    def open_for(self, agency_id: int, token: bytes, now: datetime) -> str | None:
        """The id of the agency's case on this (stored) token that is not over, if any."""
        stmt = select(Case.id).where(
            Case.agency_id == agency_id,
            Case.token == token,
            Case.state.not_in([CaseState.closed.value, CaseState.lapsed.value]),
            ~_state_is(CaseState.lapsed, now),
        )
        return self.session.scalars(stmt.limit(1)).first()

    def flags(self, case_ids: Collection[str]) -> dict[str, list[CaseFlag]]:
        found: dict[str, list[CaseFlag]] = {c: [] for c in case_ids}
        if not case_ids:
            return found
        stmt = (
            select(CaseFlag)
            .where(CaseFlag.case_id.in_(list(case_ids)))
            .order_by(CaseFlag.case_id, CaseFlag.code, CaseFlag.id)
        )
        for flag in self.session.scalars(stmt):
            found[flag.case_id].append(flag)
        return found

    def history(self, case_id: str) -> Sequence[CaseEvent]:
        stmt = select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)
        return self.session.scalars(stmt).all()

    def add_event(self, event: CaseEvent) -> None:
        self.session.add(event)

    def listing(
        self,
        agency_id: int,
        now: datetime,
        *,
        state: CaseState | None,
        flag: str | None,
        due_before: datetime | None,
        due_after: datetime | None,
        limit: int,
        offset: int,
    ) -> Sequence[Case]:
        stmt = select(Case).where(Case.agency_id == agency_id)
        if state is not None:
            stmt = stmt.where(_state_is(state, now))
        if flag is not None:
            on_flag = select(CaseFlag.id).where(CaseFlag.case_id == Case.id, CaseFlag.code == flag)
            stmt = stmt.where(on_flag.exists())
        if due_before is not None:
            stmt = stmt.where(Case.response_due_at < due_before)
        if due_after is not None:
            stmt = stmt.where(Case.response_due_at >= due_after)
        stmt = stmt.order_by(Case.opened_at, Case.id).limit(limit).offset(offset)
        return self.session.scalars(stmt).all()

    # --- where a case comes from ----------------------------------------------------------

    def roster_ordinal(self, roster_id: int, token: bytes) -> int | None:
        stmt = select(roster_rows.c.ordinal).where(
            roster_rows.c.snapshot_id == roster_id, roster_rows.c.token == token
        )
        found = self.session.execute(stmt).first()
        return int(found[0]) if found is not None else None

    def result_sources(self, job_id: str, ordinal: int) -> list[int] | None:
        """The indexes of a job's sources that flagged this roster ordinal; None if the
        job's result does not list it. Chunks hold ascending ordinals, so each chunk's first
        and last (4 bytes each, read in the database) say which one chunk to read."""
        chunks = match_result_chunks.c
        bounds = select(
            chunks.chunk,
            func.substr(chunks.ordinals, 1, 4),
            func.substr(chunks.ordinals, func.length(chunks.ordinals) - 3, 4),
        ).where(chunks.job_id == job_id, chunks.rows > 0)
        for chunk, first, last in self.session.execute(bounds):
            low, high = (int.from_bytes(bytes(b), "little", signed=True) for b in (first, last))
            if not low <= ordinal <= high:
                continue
            ordinals_blob, sources = self.session.execute(
                select(chunks.ordinals, chunks.sources).where(
                    chunks.job_id == job_id, chunks.chunk == chunk
                )
            ).one()
            ordinals = np.frombuffer(ordinals_blob, dtype="<i4")
            at = int(np.searchsorted(ordinals, ordinal))
            if at < len(ordinals) and int(ordinals[at]) == ordinal:
                return [int(i) for i in sources.split("\n")[at].split(",")]
            return None
        return None

    def count_by_state(self) -> dict[str, int]:
        """Cases by recorded state (an indication past its lapse time counts as an indication
        until the scheduled pass records it)."""
        stmt = select(Case.state, func.count()).group_by(Case.state)
        return {str(state): int(n) for state, n in self.session.execute(stmt)}

    def agency_codes(self, agency_ids: Collection[int]) -> dict[int, str]:
        stmt = select(Agency.id, Agency.code).where(Agency.id.in_(list(agency_ids)))
        return {int(i): str(c) for i, c in self.session.execute(stmt)}

    def snapshot_agencies(self, snapshot_ids: Collection[int]) -> dict[int, int]:
        stmt = select(Snapshot.id, Snapshot.agency_id).where(Snapshot.id.in_(list(snapshot_ids)))
        return {int(s): int(a) for s, a in self.session.execute(stmt)}

    def lookup_entry(
        self, seq: int
    ) -> tuple[str | None, str | None, datetime, dict[str, Any]] | None:
        """(agency, route, time, body) of an audit entry."""
        stmt = select(
            AuditEntry.agency, AuditEntry.route, AuditEntry.created_at, AuditEntry.body
        ).where(AuditEntry.seq == seq)
        row = self.session.execute(stmt).first()
        if row is None:
            return None
        return row.agency, row.route, row.created_at, json.loads(row.body)

    def current_assertions(
        self, token: bytes, codes: Collection[str]
    ) -> list[tuple[str, str, Any, int]]:
        """(flag, agency kind, as_of, provider id) of every current snapshot of these flags
        that asserts this (stored) token."""
        stmt = (
            select(Snapshot.flag_code, Agency.kind, Snapshot.as_of, Snapshot.agency_id)
            .select_from(snapshot_rows)
            .join(Snapshot, Snapshot.id == snapshot_rows.c.snapshot_id)
            .join(Agency, Agency.id == Snapshot.agency_id)
            .where(
                snapshot_rows.c.token == token,
                Snapshot.state == SnapshotState.current,
                Snapshot.kind == "flag",
                Snapshot.flag_code.in_(list(codes)),
            )
            .order_by(Snapshot.flag_code, Snapshot.id)
        )
        return [(str(f), str(k), d, int(a)) for f, k, d, a in self.session.execute(stmt)]

    # --- settings ------------------------------------------------------------------------

    def notice_days(self, purpose: str) -> int | None:
        found = self.session.get(CaseNoticePeriod, purpose)
        return found.days if found is not None else None

    def set_notice_days(self, purpose: str, days: int) -> None:
        found = self.session.get(CaseNoticePeriod, purpose)
        if found is None:
            self.session.add(CaseNoticePeriod(purpose=purpose, days=days))
        else:
            found.days = days
        self.session.flush()

    # --- feedback ------------------------------------------------------------------------

    def count_outcome(self, rows: Sequence[dict[str, Any]]) -> None:
        """Add one to each (provider, consumer, flag, month, outcome, reason) count, and each
        row's ``indications`` to its own."""
        if not rows:
            return
        dialect = self.session.connection().dialect.name
        builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = builder(FeedbackCount).values([{**row, "count": 1} for row in rows])
        stmt = stmt.on_conflict_do_update(
            index_elements=["provider_id", "consumer_id", "flag", "month", "outcome", "reason"],
            set_={
                "count": FeedbackCount.count + 1,
                "indications": FeedbackCount.indications + stmt.excluded.indications,
            },
        )
        self.session.execute(stmt)

    def provider_counts(self, provider_id: int) -> list[tuple[str, str, str, str, int]]:
        """(month, flag, outcome, reason, count) over every consumer."""
        return self._counts(
            FeedbackCount.count,
            FeedbackCount.provider_id == provider_id,
            FeedbackCount.month,
            FeedbackCount.flag,
        )

    def consumer_counts(self, consumer_id: int) -> list[tuple[str, str, str, str, int]]:
        """(flag, source, outcome, reason, indications) of the consumer's own verifications."""
        return self._counts(
            FeedbackCount.indications,
            FeedbackCount.consumer_id == consumer_id,
            FeedbackCount.flag,
            FeedbackCount.source,
        )

    def _counts(
        self, counted: Any, where: ColumnElement[bool], first: Any, second: Any
    ) -> list[tuple[str, str, str, str, int]]:
        keys = (first, second, FeedbackCount.outcome, FeedbackCount.reason)
        stmt = select(*keys, func.sum(counted)).where(where).group_by(*keys)
        return [(a, b, o, r, int(n)) for a, b, o, r, n in self.session.execute(stmt)]

    # --- lapse and retention -------------------------------------------------------------

    def lapsing(self, now: datetime, limit: int) -> Sequence[Case]:
        stmt = (
            select(Case)
            .where(Case.state == CaseState.indication.value, Case.lapses_at <= now)
            .order_by(Case.lapses_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return self.session.scalars(stmt).all()

    def retention_due(self, before: datetime, limit: int) -> list[str]:
        """Closed and lapsed cases that ended before ``before``."""
        stmt = (
            select(Case.id)
            .where(
                Case.state.in_([CaseState.closed.value, CaseState.lapsed.value]),
                Case.closed_at < before,
            )
            .order_by(Case.closed_at, Case.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(self.session.scalars(stmt))

    def delete(self, case_ids: Collection[str]) -> None:
        ids = list(case_ids)
        self.session.execute(delete(CaseEvent).where(CaseEvent.case_id.in_(ids)))
        self.session.execute(delete(CaseFlag).where(CaseFlag.case_id.in_(ids)))
        self.session.execute(delete(Case).where(Case.id.in_(ids)))
