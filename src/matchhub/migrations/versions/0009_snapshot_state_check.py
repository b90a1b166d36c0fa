"""snapshot states: a CHECK constraint refuses any state the code does not know

A snapshot's state decides what readers see, and migration 0008's triggers bump the view
generation by comparing it with the string ``'current'``: a misspelt state written by any code
path would be a snapshot no reader and no trigger notices. The states are one enum in the code
(uploads/models.py ``SnapshotState``); here the database holds them to it.

PostgreSQL adds the constraint in place. SQLite cannot add a constraint to a table, so the
table is rebuilt (Alembic's batch mode), which drops the triggers on it: 0008's snapshot
triggers are made again, word for word.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = ("pending", "current", "superseded", "discarded", "purged")
CONDITION = "state IN ({})".format(", ".join(f"'{s}'" for s in STATES))
NAME = "ck_snapshots_state"

# As in 0008, for SQLite.
BUMP = "UPDATE view_generation SET generation = generation + 1 WHERE id = 1"
SNAPSHOT_CHANGES = {
    "ins": ("INSERT", "NEW.state = 'current'"),
    "upd": (
        "UPDATE OF state",
        "OLD.state IS NOT NEW.state AND (OLD.state = 'current' OR NEW.state = 'current')",
    ),
    "del": ("DELETE", "OLD.state = 'current'"),
}


def _sqlite_triggers() -> None:
    for suffix, (event, condition) in SNAPSHOT_CHANGES.items():
        op.execute(
            f"CREATE TRIGGER snapshots_view_changed_{suffix} AFTER {event} ON snapshots "
            f"WHEN {condition} BEGIN {BUMP}; END"
        )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE snapshots ADD CONSTRAINT {NAME} CHECK ({CONDITION})")
        return
    with op.batch_alter_table("snapshots", recreate="always") as batch_op:
        batch_op.create_check_constraint(op.f(NAME), CONDITION)
    _sqlite_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE snapshots DROP CONSTRAINT {NAME}")
        return
    with op.batch_alter_table("snapshots", recreate="always") as batch_op:
        batch_op.drop_constraint(op.f(NAME), type_="check")
    _sqlite_triggers()
