from __future__ import annotations

from sqlalchemy import BigInteger, Integer
from sqlalchemy.orm import Mapped, mapped_column

from matchhub.kit.models import Base


class ViewGeneration(Base):
    """One row counting the changes a lookup's answer depends on: agencies, certificates, flags,
    purposes, grants, and snapshots entering or leaving ``current``.

    Database triggers (migration 0008) bump it in the transaction that makes the change, so no
    code path can forget to, and a reader that sees generation G sees exactly the state G
    counts. Lookups answered from the in-memory view (lookups/inmemory.py) name the generation it
    was loaded at, and the audit writer refuses an answer whose generation is no longer the
    database's (web/writer.py)."""

    __tablename__ = "view_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
