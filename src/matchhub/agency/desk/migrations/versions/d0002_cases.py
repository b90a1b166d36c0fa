"""the desk's cases: the broker's case mirrored with its assignment, and the staff's notes

Revision ID: d0002
Revises: d0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d0002"
down_revision: str | None = "d0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "desk_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("broker_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("match_id", sa.Integer(), nullable=True),
        sa.Column("lookup_seq", sa.Integer(), nullable=True),
        sa.Column("roster_version", sa.Integer(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("governorate", sa.String(length=64), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("flag_codes", sa.String(length=400), nullable=False),
        sa.Column("assigned_to", sa.Integer(), nullable=True),
        sa.Column("opened_by", sa.String(length=64), nullable=False),
        sa.Column("response_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lapses_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assigned_to"], ["desk_users.id"], name=op.f("fk_desk_cases_assigned_to_desk_users")
        ),
        sa.ForeignKeyConstraint(
            ["match_id"], ["desk_matches.id"], name=op.f("fk_desk_cases_match_id_desk_matches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_cases")),
        sa.UniqueConstraint("broker_id", name=op.f("uq_desk_cases_broker_id")),
    )
    with op.batch_alter_table("desk_cases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_desk_cases_assigned_to"), ["assigned_to"], unique=False
        )
        batch_op.create_index("ix_desk_cases_person", ["roster_version", "row"], unique=False)
        batch_op.create_index("ix_desk_cases_queue", ["state", "governorate"], unique=False)

    op.create_table(
        "desk_case_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["desk_cases.id"], name=op.f("fk_desk_case_notes_case_id_desk_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_case_notes")),
    )
    with op.batch_alter_table("desk_case_notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_desk_case_notes_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("desk_case_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_desk_case_notes_case_id"))
    op.drop_table("desk_case_notes")
    with op.batch_alter_table("desk_cases", schema=None) as batch_op:
        batch_op.drop_index("ix_desk_cases_queue")
        batch_op.drop_index("ix_desk_cases_person")
        batch_op.drop_index(batch_op.f("ix_desk_cases_assigned_to"))
    op.drop_table("desk_cases")
