from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
)
from sqlalchemy.orm import Mapped, mapped_column

from matchhub.kit.models import Base, UTCDateTime, utcnow


class Upload(Base):
    """One push: opened, fed chunk by chunk, then committed, aborted or expired."""

    __tablename__ = "uploads"
    __table_args__ = (
        # A repeated open (its answer was lost) names the same key: one upload per key.
        Index("ux_uploads_agency_idempotency_key", "agency_id", "idempotency_key", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # flags | roster
    key_version: Mapped[str] = mapped_column(ForeignKey("matching_key_versions.version"))
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    expected_rows: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16), default="open")
    rows_received: Mapped[int] = mapped_column(Integer, default=0)
    chunks_received: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), default=None)


class UploadChunk(Base):
    """What the broker remembers of a chunk: its digest and size, never its body."""

    __tablename__ = "upload_chunks"

    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SnapshotState(StrEnum):
    """A snapshot's life. Only ``current`` is visible to readers; which snapshots are current
    is asked in one place (uploads/repository.py :class:`SnapshotRepository`), and database
    triggers (migration 0008) bump the view generation when a snapshot enters or leaves it.

    ``pending`` → ``current`` → ``superseded`` → ``purged``: rows arrive, the commit makes it
    visible, a later commit replaces it, a purge deletes its rows once no reader can see them.
    ``pending`` → ``discarded`` → ``purged``: its upload was aborted or expired. A retired key
    version discards every snapshot made under it, current ones included."""

    pending = "pending"
    current = "current"
    superseded = "superseded"
    discarded = "discarded"
    purged = "purged"


# Stored as its value in a plain VARCHAR (no native enum type to migrate on PostgreSQL); the
# CHECK constraint (migration 0009) refuses any other string, whoever writes it.
_SNAPSHOT_STATE = Enum(
    SnapshotState,
    native_enum=False,
    create_constraint=False,
    length=16,
    values_callable=lambda states: [s.value for s in states],
    validate_strings=True,
)


class Snapshot(Base):
    """One provider's assertion of one flag, or one version of a consumer's roster.

    Visibility is the state alone: rows of a ``pending`` snapshot are written chunk by chunk,
    and the commit flips ``pending`` → ``current`` (and the previous ``current`` →
    ``superseded``) in one transaction, so a reader sees the old snapshot or the new one,
    never a mix.
    """

    __tablename__ = "snapshots"
    __table_args__ = (
        Index("ix_snapshots_agency_state", "agency_id", "kind", "state"),
        CheckConstraint(
            "state IN ({})".format(", ".join(f"'{s.value}'" for s in SnapshotState)),
            name="state",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    kind: Mapped[str] = mapped_column(String(16))  # flag | roster
    flag_code: Mapped[str | None] = mapped_column(ForeignKey("flags.code"), default=None)
    key_version: Mapped[str] = mapped_column(ForeignKey("matching_key_versions.version"))
    state: Mapped[SnapshotState] = mapped_column(_SNAPSHOT_STATE, default=SnapshotState.pending)
    as_of: Mapped[date] = mapped_column(Date)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    committed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # When a purge pass first saw this snapshot replaced (database clock, so after the commit
    # that replaced it): its rows go once no transaction older than this is still running.
    replaced_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


# The rows themselves, kept as a plain table (no ORM identity, no primary key): written in bulk
# (COPY on PostgreSQL), read by set-based queries only. ``token`` is the re-keyed token.
#
# On PostgreSQL the table is partitioned by snapshot, one partition a snapshot: a pending
# snapshot's rows are COPYed into a table of their own with no index (as fast as COPY goes), the
# commit attaches it, which builds its indexes in one sorted pass, and replacing a snapshot
# drops its partition instead of deleting millions of rows. SQLite keeps one table.
snapshot_rows = Table(
    "snapshot_rows",
    Base.metadata,
    Column("snapshot_id", Integer, nullable=False),
    Column("token", LargeBinary(16), nullable=False),
    # Lookups find a token's flags through this index.
    Index("ix_snapshot_rows_token", "token", "snapshot_id"),
    # The match engine loads whole snapshots. SQLite's one table finds them by this index; on
    # PostgreSQL a snapshot is a partition of its own, found by partition pruning, so the
    # index would narrow nothing and only cost the commit its build (migration 0018).
    Index("ix_snapshot_rows_snapshot", "snapshot_id").ddl_if(dialect="sqlite"),
    postgresql_partition_by="LIST (snapshot_id)",
)


def rows_table(kind: str) -> str:
    """The table a snapshot of ``kind`` keeps its rows in: a roster's ``roster_rows``, a
    provider's ``snapshot_rows``."""
    return "roster_rows" if kind == "roster" else "snapshot_rows"


def partition_name(snapshot_id: int, kind: str = "flag") -> str:
    """The partition of one snapshot's rows on PostgreSQL."""
    return f"{rows_table(kind)}_{int(snapshot_id)}"


# A consumer's roster: the re-keyed token for matching, the ordinal the consumer sent it at, and
# the sealed wire token (keystore/rekey.py) from which a match job's answer is given back. On
# PostgreSQL partitioned as ``snapshot_rows`` is, one partition a roster (migration 0020).
roster_rows = Table(
    "roster_rows",
    Base.metadata,
    Column("snapshot_id", Integer, nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("token", LargeBinary(16), nullable=False),
    Column("sealed", LargeBinary(48), nullable=False),
    PrimaryKeyConstraint("snapshot_id", "ordinal"),
    # Lookups and cases find a token on a roster through this index.
    Index("ix_roster_rows_token", "token", "snapshot_id"),
    postgresql_partition_by="LIST (snapshot_id)",
)
