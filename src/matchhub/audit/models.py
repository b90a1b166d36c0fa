from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from matchhub.kit.models import Base, UTCDateTime


class AuditEntry(Base):
    """One leaf of the log. ``body`` is the canonical JSON the leaf hash is computed over; the
    other columns are copies of fields inside it, for the auditors' filters. Append-only: the
    migrations install triggers that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL)."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_agency", "agency", "seq"),
        Index("ix_audit_entries_route", "route", "seq"),
        Index("ix_audit_entries_time", "created_at"),
        Index("ix_audit_entries_end_user", "end_user", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))
    agency: Mapped[str | None] = mapped_column(String(64))
    route: Mapped[str | None] = mapped_column(String(200))
    # The staff member a consumer's or auditor's desk named (Matchhub-End-User), a copy of the
    # body's ``end_user`` for the auditors' filter over tens of millions of entries.
    end_user: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


# Keyed digests of the tokens an entry concerns (lookups), for the subject access trail.
audit_subjects = Table(
    "audit_subjects",
    Base.metadata,
    Column("digest", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("ix_audit_subjects_digest", "digest", "seq"),
)


# The root of every perfect subtree of the log above its leaves, stored as the subtree
# completes (migration 0014): the subtree of level L and index i holds leaves i * 2**L up to
# (i + 1) * 2**L. A proof is made of O(log n) of them (protocol/merkle.py ``subtrees``); the
# leaves themselves (level 0) are the entries' leaf hashes. Append-only, like the entries.
audit_nodes = Table(
    "audit_nodes",
    Base.metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)


class AuditState(Base):
    """The one row that serialises appends: the tree size and its Merkle frontier."""

    __tablename__ = "audit_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    frontier: Mapped[dict[str, Any]] = mapped_column(JSON)
    checkpoint_size: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
