"""the audit office's witness: the last checkpoint accepted, and the alarms it raised

Revision ID: d0003
Revises: d0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d0003"
down_revision: str | None = "d0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "desk_audit_witness",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=200), nullable=False),
        sa.Column("verifier_key", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_audit_witness")),
    )
    op.create_table(
        "desk_audit_alarms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("saved_size", sa.BigInteger(), nullable=True),
        sa.Column("seen_size", sa.BigInteger(), nullable=True),
        sa.Column("saved_note", sa.Text(), nullable=True),
        sa.Column("refused_note", sa.Text(), nullable=True),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("acknowledgement", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_audit_alarms")),
    )


def downgrade() -> None:
    op.drop_table("desk_audit_alarms")
    op.drop_table("desk_audit_witness")
