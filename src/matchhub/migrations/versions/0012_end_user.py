"""the acting staff member (Matchhub-End-User) on audit entries and match jobs

A consumer's or auditor's desk names the staff member it acts for; the broker records that
pseudonymous id in the hashed body of every entry the request causes and, for the auditors'
filter over tens of millions of entries, in an indexed column beside it. A match job keeps it,
so the entries of the job's later states name the person who asked too.

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Adding a nullable column rewrites no row, so the append-only triggers are not involved.
    op.add_column("audit_entries", sa.Column("end_user", sa.String(length=64), nullable=True))
    op.create_index("ix_audit_entries_end_user", "audit_entries", ["end_user", "seq"])
    op.add_column("match_jobs", sa.Column("end_user", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # Both engines drop a column in place (SQLite since 3.35); no table rebuild needed.
    op.drop_index("ix_audit_entries_end_user", table_name="audit_entries")
    op.execute("ALTER TABLE audit_entries DROP COLUMN end_user")
    op.execute("ALTER TABLE match_jobs DROP COLUMN end_user")
