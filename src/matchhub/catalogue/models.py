from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from matchhub.kit.models import Base, UTCDateTime, utcnow


class Flag(Base):
    """A fact a provider may assert about a token, evaluated at the source by its rule."""

    __tablename__ = "flags"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    asserted_by: Mapped[str] = mapped_column(String(32))
    label_en: Mapped[str] = mapped_column(String(200))
    label_ar: Mapped[str] = mapped_column(String(200))
    rule_text: Mapped[str] = mapped_column(Text)
    rule_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Purpose(Base):
    __tablename__ = "purposes"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    label_en: Mapped[str] = mapped_column(String(200))
    label_ar: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Grant(Base):
    """``grantee`` may see ``flag_code`` when it states ``purpose_code``.

    ``grantee`` is ``kind:<agency kind>`` (every consumer of that kind) or ``agency:<code>``.
    """

    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("grantee", "flag_code", "purpose_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grantee: Mapped[str] = mapped_column(String(100))
    flag_code: Mapped[str] = mapped_column(ForeignKey("flags.code"))
    purpose_code: Mapped[str] = mapped_column(ForeignKey("purposes.code"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
