from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from matchhub.kit.models import Base, UTCDateTime


class BrokerProcess(Base):
    """One running ``matchhub serve`` or ``matchhub worker``, announced at start, seen at every
    heartbeat, removed at a clean stop (a killed one ages out).

    The serving processes divide each agency's lookup rate between them (kit/ratelimit.py);
    the operator reads the table with ``matchhub processes``. It holds nothing about agencies."""

    __tablename__ = "broker_processes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # host:pid:random
    role: Mapped[str] = mapped_column(String(16))  # serve | worker
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
