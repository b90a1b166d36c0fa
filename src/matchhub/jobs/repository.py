from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

import numpy as np
from sqlalchemy import Integer, any_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from matchhub.jobs.models import RESULT_CHUNK_ROWS, MatchJob, match_result_chunks
from matchhub.uploads.models import roster_rows


class JobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def count_queued(self, agency_id: int) -> int:
        """The agency's jobs waiting for a worker."""
        stmt = select(func.count()).where(
            MatchJob.agency_id == agency_id, MatchJob.state == "queued"
        )
        return int(self.session.scalar(stmt) or 0)

    def add(self, job: MatchJob) -> None:
        self.session.add(job)
        self.session.flush()

    def get(self, job_id: str) -> MatchJob | None:
        return self.session.get(MatchJob, job_id)

    def claim(self, worker: str, now: datetime, lease_until: datetime) -> MatchJob | None:
        """Take the oldest queued job, or a running one whose worker's lease ran out.

        On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets several broker processes claim at once
        without ever taking the same job; SQLite serialises writers, which does the same.
        """
        stmt = (
            select(MatchJob)
            .where(
                or_(
                    MatchJob.state == "queued",
                    (MatchJob.state == "running") & (MatchJob.lease_until < now),
                )
            )
            .order_by(MatchJob.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        job = self.session.scalars(stmt).one_or_none()
        if job is None:
            return None
        job.state, job.worker, job.lease_until = "running", worker, lease_until
        job.attempts += 1
        job.started_at = now
        job.progress = 0.0
        self.session.flush()
        return job

    def renew(self, job_id: str, worker: str, lease_until: datetime, progress: float) -> bool:
        result = self.session.execute(
            update(MatchJob)
            .where(MatchJob.id == job_id, MatchJob.worker == worker, MatchJob.state == "running")
            .values(lease_until=lease_until, progress=progress)
        )
        return bool(getattr(result, "rowcount", 0))

    def owned(self, job_id: str, worker: str) -> MatchJob | None:
        """The job, locked, if this worker still holds it (a fence against a lost lease)."""
        stmt = (
            select(MatchJob)
            .where(MatchJob.id == job_id, MatchJob.worker == worker, MatchJob.state == "running")
            .with_for_update()
        )
        return self.session.scalars(stmt).one_or_none()

    # results

    def write_results(self, job_id: str, ordinals: np.ndarray, sources: np.ndarray) -> None:
        """The flagged ordinals (ascending) and their source indexes, a chunk a row."""
        if len(ordinals) != len(sources):
            raise ValueError("one source list per ordinal")
        rows = []
        for n, start in enumerate(range(0, len(ordinals), RESULT_CHUNK_ROWS)):
            part = slice(start, start + RESULT_CHUNK_ROWS)
            rows.append(
                {
                    "job_id": job_id,
                    "chunk": n,
                    "rows": len(ordinals[part]),
                    "ordinals": np.asarray(ordinals[part], "<i4").tobytes(),
                    "sources": "\n".join(sources[part]),
                }
            )
        if rows:
            self.session.execute(insert(match_result_chunks), rows)

    def delete_results(self, job_id: str) -> None:
        self.session.execute(
            delete(match_result_chunks).where(match_result_chunks.c.job_id == job_id)
        )

    def results(self, job: MatchJob, batch: int = 5000) -> Iterator[tuple[list[str], bytes]]:
        """The results in roster order, ``batch`` at a time: each result's sources (indexes into
        the job's sources, comma-separated) and the batch's sealed tokens concatenated, in the
        same order. A chunk is read at a time, so memory follows the chunk, not the roster."""
        chunks = (
            select(match_result_chunks.c.chunk)
            .where(match_result_chunks.c.job_id == job.id)
            .order_by(match_result_chunks.c.chunk)
        )
        # A batch's ordinals: one array on PostgreSQL (a parameter, not thousands: a fifth of
        # the CPU and about half the time), a list of parameters on SQLite, which has no arrays.
        ordinal = roster_rows.c.ordinal
        in_batch = (
            ordinal == any_(bindparam("wanted", type_=ARRAY(Integer)))
            if self.session.get_bind().dialect.name == "postgresql"
            else ordinal.in_(bindparam("wanted", expanding=True))
        )
        batch_rows = (
            select(roster_rows.c.sealed)
            .where(roster_rows.c.snapshot_id == job.roster_snapshot_id, in_batch)
            .order_by(ordinal)
        )
        for chunk in list(self.session.scalars(chunks)):
            row = self.session.execute(
                select(match_result_chunks.c.ordinals, match_result_chunks.c.sources).where(
                    match_result_chunks.c.job_id == job.id, match_result_chunks.c.chunk == chunk
                )
            ).one()
            ordinals = np.frombuffer(row.ordinals, dtype="<i4").tolist()
            lists = row.sources.split("\n") if ordinals else []
            if len(lists) != len(ordinals):  # pragma: no cover (written together, one a result)
                raise ValueError("a result chunk's sources and ordinals differ in number")
            for start in range(0, len(ordinals), batch):
                wanted = ordinals[start : start + batch]
                # A chunk's ordinals ascend and are distinct, so the tokens in ordinal order
                # line up with them one for one.
                sealed = list(self.session.scalars(batch_rows, {"wanted": wanted}))
                if len(sealed) != len(wanted):  # pragma: no cover (a foreign key keeps them)
                    raise LookupError("a result's roster row is missing")
                yield lists[start : start + batch], b"".join(sealed)

    def with_results_on_rosters(self, roster_ids: Sequence[int]) -> Sequence[MatchJob]:
        stmt = select(MatchJob).where(
            MatchJob.roster_snapshot_id.in_(roster_ids), MatchJob.results_purged_at.is_(None)
        )
        return self.session.scalars(stmt).all()

    def expired_results(self, now: datetime, limit: int) -> list[str]:
        """Jobs whose results are past their expiry and not yet deleted, claimed (``SKIP
        LOCKED``: another process's pass takes others)."""
        stmt = (
            select(MatchJob.id)
            .where(MatchJob.expires_at < now, MatchJob.results_purged_at.is_(None))
            .order_by(MatchJob.expires_at, MatchJob.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(self.session.scalars(stmt))

    def mark_purged(self, job_ids: Sequence[str], now: datetime) -> None:
        self.session.execute(
            update(MatchJob).where(MatchJob.id.in_(list(job_ids))).values(results_purged_at=now)
        )

    def count_results(self, job_id: str) -> int:
        stmt = select(func.coalesce(func.sum(match_result_chunks.c.rows), 0)).where(
            match_result_chunks.c.job_id == job_id
        )
        return int(self.session.scalar(stmt) or 0)
