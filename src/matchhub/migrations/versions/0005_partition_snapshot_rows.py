"""snapshot rows partitioned by snapshot on PostgreSQL

One partition a snapshot: uploads COPY into an unindexed table of their own, the commit attaches
it (building its indexes in one sorted pass), and replacing a snapshot drops its partition. Rows
already stored move to one partition per snapshot. SQLite keeps its single table: nothing to do.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    "CREATE INDEX ix_snapshot_rows_token ON snapshot_rows (token, snapshot_id)",
    "CREATE INDEX ix_snapshot_rows_snapshot ON snapshot_rows USING brin (snapshot_id)",
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_snapshot_rows_token")
    op.execute("DROP INDEX ix_snapshot_rows_snapshot")
    op.execute("ALTER TABLE snapshot_rows RENAME TO snapshot_rows_unpartitioned")
    op.execute(
        "CREATE TABLE snapshot_rows (snapshot_id INTEGER NOT NULL, token BYTEA NOT NULL) "
        "PARTITION BY LIST (snapshot_id)"
    )
    for statement in _INDEXES:
        op.execute(statement)
    ids = bind.execute(text("SELECT DISTINCT snapshot_id FROM snapshot_rows_unpartitioned"))
    for (snapshot_id,) in ids.all():
        sid = int(snapshot_id)
        op.execute(
            f"CREATE TABLE snapshot_rows_{sid} PARTITION OF snapshot_rows FOR VALUES IN ({sid})"
        )
        op.execute(
            f"INSERT INTO snapshot_rows_{sid} SELECT snapshot_id, token "  # noqa: S608 (sid: an int)
            f"FROM snapshot_rows_unpartitioned WHERE snapshot_id = {sid}"
        )
    op.execute("DROP TABLE snapshot_rows_unpartitioned")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(
        "CREATE TABLE snapshot_rows_unpartitioned "
        "(snapshot_id INTEGER NOT NULL, token BYTEA NOT NULL)"
    )
    op.execute(
        "INSERT INTO snapshot_rows_unpartitioned SELECT snapshot_id, token FROM snapshot_rows"
    )
    partitions = bind.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'snapshot_rows'"
        )
    )
    for (name,) in partitions.all():
        op.execute(f'DROP TABLE "{name}"')
    op.execute("DROP TABLE snapshot_rows")
    op.execute("ALTER TABLE snapshot_rows_unpartitioned RENAME TO snapshot_rows")
    for statement in _INDEXES:
        op.execute(statement)
