from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from matchhub.kit.models import Base, UTCDateTime, utcnow


class MatchJob(Base):
    """A job's life: ``queued`` → ``running`` → ``succeeded`` | ``failed`` (with a reason).

    A running job holds a lease (``worker``, ``lease_until``) that its worker renews; a job whose
    lease ran out (its process died) is claimed again and re-run from the start, at most
    ``job_max_attempts`` times, so no job stays ``running`` forever and none yields a partial
    result as complete.
    """

    __tablename__ = "match_jobs"
    __table_args__ = (Index("ix_match_jobs_state", "state", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    purpose: Mapped[str] = mapped_column(ForeignKey("purposes.code"))
    flags: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    roster_snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id"))
    # Who asked, through the ministry's desk (Matchhub-End-User): named in every entry of the
    # job's life, not only in the request that opened it.
    end_user: Mapped[str | None] = mapped_column(String(64), default=None)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    sources: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    results_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


# A job's results in chunks of up to RESULT_CHUNK_ROWS flagged roster members, in roster order:
# their ordinals (the token is given back from the roster's sealed form) as little-endian
# int32, and for each the indexes of the job's sources that flagged it ("0,3"), one a line.
# A few rows a job instead of one a beneficiary: written in milliseconds, streamed in order.
RESULT_CHUNK_ROWS = 65_536

match_result_chunks = Table(
    "match_result_chunks",
    Base.metadata,
    Column("job_id", String(32), nullable=False),
    Column("chunk", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("ordinals", LargeBinary, nullable=False),
    Column("sources", Text, nullable=False),
    PrimaryKeyConstraint("job_id", "chunk"),
)
