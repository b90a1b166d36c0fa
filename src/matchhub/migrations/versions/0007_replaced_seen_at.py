"""snapshots remember when a purge pass first saw them replaced

Replaced snapshots were purged a fixed grace period after the commit that replaced them, which
narrowed the window in which a PostgreSQL statement that began before the commit could lose the
partition it was about to read, but did not close it. The purge now waits until no transaction
older than ``replaced_seen_at`` is open (uploads/service.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "snapshots", sa.Column("replaced_seen_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    # Both engines drop a column in place (SQLite since 3.35); no table rebuild needed.
    op.execute("ALTER TABLE snapshots DROP COLUMN replaced_seen_at")
