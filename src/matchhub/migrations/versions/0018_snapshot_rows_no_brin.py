"""snapshot rows without their BRIN index on PostgreSQL

Since 0005 each snapshot's rows are a partition of their own, so a query on one snapshot is
pruned to its partition and the BRIN index on ``snapshot_id`` narrows nothing there. It was
built when a partner's upload was committed (attaching the partition builds its indexes), in
the commit's answer time: about 0.4 s of 1.1 s for a million rows on a loaded machine (issue
18). SQLite keeps its one table and its B-tree index on ``snapshot_id``.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # On the partitioned table: drops every partition's copy with it.
        op.execute("DROP INDEX ix_snapshot_rows_snapshot")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_snapshot_rows_snapshot ON snapshot_rows USING brin (snapshot_id)"
        )
