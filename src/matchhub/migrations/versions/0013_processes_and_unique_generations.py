"""broker processes announce themselves; a view generation never repeats, even after a restore

``broker_processes``: one heartbeat row per running ``matchhub serve`` or ``matchhub worker``.
The serving processes divide each agency's lookup rate between them, so the limit holds across
processes (kit/ratelimit.py).

The view generation was a counter: a database restored to an earlier point in time went back to
an earlier count and, after as many changes, reached again a generation a running broker's
lookup view already held, with other contents. Now each bump sets it to the database clock in
microseconds, or to one more than before if that is higher: still increasing in any one
history, and a generation made after a restore is later than any the lost history made, so it
names one state of the hub in every history (docs/deployment.md, the restore epoch).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in 0008; only the bump changes.
WHOLE_TABLES = ("agencies", "certificates", "flags", "purposes", "grants")
SNAPSHOT_CHANGES = {
    "ins": ("INSERT", "NEW.state = 'current'"),
    "upd": ("UPDATE OF state", "{old_new} AND (OLD.state = 'current' OR NEW.state = 'current')"),
    "del": ("DELETE", "OLD.state = 'current'"),
}
COUNTER = "generation + 1"
CLOCK = {
    "postgresql": "GREATEST(generation + 1, "
    "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint)",
    "sqlite": "max(generation + 1, "
    "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER))",
}


def _bump(value: str) -> str:
    return f"UPDATE view_generation SET generation = {value} WHERE id = 1"  # noqa: S608 (constants of this module)


def _set_bump(value: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION matchhub_view_changed() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN {_bump(value)}; RETURN NULL; END $$"
        )
        return
    # SQLite triggers hold their body: make them again.
    for table in WHOLE_TABLES:
        for event in ("INSERT", "UPDATE", "DELETE"):
            name = f"{table}_view_changed_{event.lower()}"
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {_bump(value)}; END")
    for suffix, (event, when) in SNAPSHOT_CHANGES.items():
        name = f"snapshots_view_changed_{suffix}"
        condition = when.format(old_new="OLD.state IS NOT NEW.state")
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON snapshots "
            f"WHEN {condition} BEGIN {_bump(value)}; END"
        )


def upgrade() -> None:
    op.create_table(
        "broker_processes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broker_processes")),
    )
    _set_bump(CLOCK[op.get_bind().dialect.name])


def downgrade() -> None:
    # The generation keeps its (large) value; counting on from it is as good as from any.
    _set_bump(COUNTER)
    op.drop_table("broker_processes")
