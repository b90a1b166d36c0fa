"""audit log

The log is append-only in the database itself: triggers refuse UPDATE and DELETE of entries,
subject digests and checkpoints (and TRUNCATE on PostgreSQL), so even a bug or an operator with
the application's credentials cannot rewrite it quietly; what a database superuser might still
do is caught by the signed checkpoints and the auditors' witnesses.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:26:43.976159
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION matchhub_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
        )

    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("agency", sa.String(length=64), nullable=True),
        sa.Column("route", sa.String(length=200), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_entries")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index("ix_audit_entries_agency", ["agency", "seq"], unique=False)
        batch_op.create_index("ix_audit_entries_route", ["route", "seq"], unique=False)
        batch_op.create_index("ix_audit_entries_time", ["created_at"], unique=False)

    op.create_table(
        "audit_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.JSON(), nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_state")),
    )
    op.create_table(
        "audit_subjects",
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
    )
    with op.batch_alter_table("audit_subjects", schema=None) as batch_op:
        batch_op.create_index("ix_audit_subjects_digest", ["digest", "seq"], unique=False)

    op.bulk_insert(
        sa.table(
            "audit_state",
            sa.column("id", sa.Integer),
            sa.column("size", sa.BigInteger),
            sa.column("frontier", sa.JSON),
            sa.column("checkpoint_size", sa.BigInteger),
        ),
        [{"id": 1, "size": 0, "frontier": {"size": 0, "hashes": []}, "checkpoint_size": 0}],
    )
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        if dialect == "postgresql":
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION matchhub_append_only()"
            )
        else:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )


APPEND_ONLY = ("audit_entries", "audit_subjects", "audit_checkpoints")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        else:
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")

    with op.batch_alter_table("audit_subjects", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_subjects_digest")

    op.drop_table("audit_subjects")
    op.drop_table("audit_state")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entries_time")
        batch_op.drop_index("ix_audit_entries_route")
        batch_op.drop_index("ix_audit_entries_agency")

    op.drop_table("audit_entries")
    op.drop_table("audit_checkpoints")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS matchhub_append_only()")
