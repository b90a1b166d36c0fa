"""the view generation: a counter the database bumps with every change a lookup depends on

Lookups may answer from an in-memory view of the registry, the grants and the current
snapshots (lookups/inmemory.py). The view is only as good as the proof that it is current, so the
proof lives in the database: triggers bump ``view_generation.generation`` in the same
transaction as any change to agencies, certificates, flags, purposes or grants, and whenever a
snapshot enters or leaves ``current``. No code path can change what a lookup sees without
moving the counter.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHOLE_TABLES = ("agencies", "certificates", "flags", "purposes", "grants")
BUMP = "UPDATE view_generation SET generation = generation + 1 WHERE id = 1"
# A snapshot matters to a lookup only while it is current: chunks arriving (rows counted on a
# pending snapshot) and the purge of replaced ones leave the generation alone.
SNAPSHOT_CHANGES = {
    "ins": ("INSERT", "NEW.state = 'current'"),
    "upd": ("UPDATE OF state", "{old_new} AND (OLD.state = 'current' OR NEW.state = 'current')"),
    "del": ("DELETE", "OLD.state = 'current'"),
}


def upgrade() -> None:
    op.create_table(
        "view_generation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_view_generation")),
    )
    op.bulk_insert(
        sa.table("view_generation", sa.column("id", sa.Integer), sa.column("generation")),
        [{"id": 1, "generation": 0}],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION matchhub_view_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table in WHOLE_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_view_changed AFTER INSERT OR UPDATE OR DELETE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION matchhub_view_changed()"
            )
        for suffix, (event, when) in SNAPSHOT_CHANGES.items():
            condition = when.format(old_new="OLD.state IS DISTINCT FROM NEW.state")
            op.execute(
                f"CREATE TRIGGER snapshots_view_changed_{suffix} AFTER {event} ON snapshots "
                f"FOR EACH ROW WHEN ({condition}) EXECUTE FUNCTION matchhub_view_changed()"
            )
        return
    for table in WHOLE_TABLES:
        for event in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_view_changed_{event.lower()} AFTER {event} ON {table} "
                f"BEGIN {BUMP}; END"
            )
    for suffix, (event, when) in SNAPSHOT_CHANGES.items():
        condition = when.format(old_new="OLD.state IS NOT NEW.state")
        op.execute(
            f"CREATE TRIGGER snapshots_view_changed_{suffix} AFTER {event} ON snapshots "
            f"WHEN {condition} BEGIN {BUMP}; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WHOLE_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_view_changed ON {table}")
        for suffix in SNAPSHOT_CHANGES:
            op.execute(f"DROP TRIGGER IF EXISTS snapshots_view_changed_{suffix} ON snapshots")
        op.execute("DROP FUNCTION IF EXISTS matchhub_view_changed()")
    else:
        for table in WHOLE_TABLES:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_view_changed_{event}")
        for suffix in SNAPSHOT_CHANGES:
            op.execute(f"DROP TRIGGER IF EXISTS snapshots_view_changed_{suffix}")
    op.drop_table("view_generation")
