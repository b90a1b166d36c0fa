"""roster rows, match jobs and results

Rosters move to their own table, which keeps each member's sealed wire token so a match job can
answer with the consumer's own tokens. Roster rows stored by 0002 have no sealed form and cannot
be given one (the wire tokens are gone), so those roster versions are purged: a consumer
registers its roster again after this upgrade.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:18:54.778454
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM snapshot_rows WHERE snapshot_id IN "
        "(SELECT id FROM snapshots WHERE kind = 'roster')"
    )
    op.execute("UPDATE snapshots SET state = 'purged' WHERE kind = 'roster'")

    op.create_table(
        "match_results",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("sources", sa.String(length=400), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "ordinal", name=op.f("pk_match_results")),
    )
    op.create_table(
        "roster_rows",
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("token", sa.LargeBinary(length=16), nullable=False),
        sa.Column("sealed", sa.LargeBinary(length=48), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_id", "ordinal", name=op.f("pk_roster_rows")),
    )
    with op.batch_alter_table("roster_rows", schema=None) as batch_op:
        batch_op.create_index("ix_roster_rows_token", ["token", "snapshot_id"], unique=False)

    op.create_table(
        "match_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=True),
        sa.Column("roster_snapshot_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("sources", sa.JSON(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("results_purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_match_jobs_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["purpose"], ["purposes.code"], name=op.f("fk_match_jobs_purpose_purposes")
        ),
        sa.ForeignKeyConstraint(
            ["roster_snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_match_jobs_roster_snapshot_id_snapshots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_jobs")),
    )
    with op.batch_alter_table("match_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_match_jobs_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index("ix_match_jobs_state", ["state", "created_at"], unique=False)

    with op.batch_alter_table("snapshot_rows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_snapshot_rows_snapshot", ["snapshot_id"], unique=False, postgresql_using="brin"
        )


def downgrade() -> None:

    with op.batch_alter_table("snapshot_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_snapshot_rows_snapshot", postgresql_using="brin")

    with op.batch_alter_table("match_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_match_jobs_state")
        batch_op.drop_index(batch_op.f("ix_match_jobs_agency_id"))

    op.drop_table("match_jobs")
    with op.batch_alter_table("roster_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_roster_rows_token")

    op.drop_table("roster_rows")
    op.drop_table("match_results")
