"""roster rows partitioned by snapshot on PostgreSQL

As 0005 did for providers' rows: a roster's rows are COPYed into a table of their own with no
index, the commit attaches it (building its key and token index in one sorted pass), and a
discarded roster's table is dropped instead of its rows deleted. Kept in one table, every row of a
roster chunk went into the token index one at a time, about three times the cost of the COPY
itself (issue 18's whole path: 0.25 s of each 50,000-row chunk). Rows already stored move to one
partition per roster, and a roster still being uploaded to a table of its own, as the new code
expects. SQLite keeps its single table: nothing to do.

Rosters a match job may name (superseded ones) are kept as before: only a discarded roster's
rows (its upload aborted or expired, its key retired) are dropped, now as a table. The upgrade
copies every stored roster row once, then builds each partition's key and index in one pass:
it takes time in proportion to the rosters kept (deploy/README.md, section 8).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "snapshot_id INTEGER NOT NULL, ordinal INTEGER NOT NULL, token BYTEA NOT NULL, "
    "sealed BYTEA NOT NULL"
)
_KEY = "ALTER TABLE roster_rows ADD CONSTRAINT pk_roster_rows PRIMARY KEY (snapshot_id, ordinal)"
_INDEX = "CREATE INDEX ix_roster_rows_token ON roster_rows (token, snapshot_id)"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_roster_rows_token")
    op.execute("ALTER TABLE roster_rows DROP CONSTRAINT pk_roster_rows")
    op.execute("ALTER TABLE roster_rows RENAME TO roster_rows_unpartitioned")
    op.execute(f"CREATE TABLE roster_rows ({_COLUMNS}) PARTITION BY LIST (snapshot_id)")
    # A roster still being uploaded gets a table of its own, not attached, as one opened after
    # this revision has (uploads/repository.py create_partition): its next chunks are COPYed
    # there and its commit attaches it. Every other roster's rows are a partition now.
    pending = {
        int(sid)
        for (sid,) in bind.execute(
            text("SELECT id FROM snapshots WHERE kind = 'roster' AND state = 'pending'")
        ).all()
    }
    stored = {
        int(sid)
        for (sid,) in bind.execute(
            text("SELECT DISTINCT snapshot_id FROM roster_rows_unpartitioned")
        ).all()
    }
    for sid in sorted(pending | stored):
        if sid in pending:
            op.execute(
                f"CREATE TABLE roster_rows_{sid} (LIKE roster_rows INCLUDING DEFAULTS, "
                f"CONSTRAINT roster_rows_{sid}_snapshot CHECK (snapshot_id = {sid}))"
            )
        else:
            op.execute(
                f"CREATE TABLE roster_rows_{sid} PARTITION OF roster_rows FOR VALUES IN ({sid})"
            )
        if sid in stored:
            op.execute(
                f"INSERT INTO roster_rows_{sid} SELECT snapshot_id, ordinal, token, sealed "  # noqa: S608 (sid: an int)
                f"FROM roster_rows_unpartitioned WHERE snapshot_id = {sid}"
            )
    op.execute("DROP TABLE roster_rows_unpartitioned")
    # Last, so each partition's key and index are built in one sorted pass, not a row at a time.
    op.execute(_KEY)
    op.execute(_INDEX)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(f"CREATE TABLE roster_rows_unpartitioned ({_COLUMNS})")
    # Every roster's table, attached or not: a pending roster's rows (an upload not yet
    # committed) were in the one table before this revision, and its commit will look for them.
    tables = bind.execute(
        text(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname ~ '^roster_rows_[0-9]+$'"
        )
    )
    for (name,) in tables.all():
        op.execute(
            "INSERT INTO roster_rows_unpartitioned "  # noqa: S608 (a name pg_class matched)
            f'SELECT snapshot_id, ordinal, token, sealed FROM "{name}"'
        )
        op.execute(f'DROP TABLE "{name}"')
    op.execute("DROP TABLE roster_rows")
    op.execute("ALTER TABLE roster_rows_unpartitioned RENAME TO roster_rows")
    op.execute(_KEY)
    op.execute(_INDEX)
