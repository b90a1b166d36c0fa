from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from matchhub.kit.models import Base, UTCDateTime, utcnow


class MatchingKeyVersion(Base):
    """A matching-key version the broker accepts. Only the id: the key itself is never here."""

    __tablename__ = "matching_key_versions"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
