"""the auditors' filters: a request's outcome and error code beside each entry, and entry times
that never go back

``audit_entries.outcome`` (``accepted``/``refused``), ``error`` (the refusal's code) and
``purpose`` (the purpose a request named) are copies of fields of the hashed body, as
``agency``, ``route`` and ``end_user`` are, so the auditor's desk filters tens of millions of
entries through indexes, pages them by sequence number (keyset, never OFFSET) and has them
counted by the database. Refusals are few, so their indexes are partial.
``audit_state.last_time`` keeps entry times non-decreasing in sequence order, so a period is one
range of sequence numbers found through ``ix_audit_entries_time``.

Entries written before this revision keep NULL in the new columns (the append-only triggers
forbid filling them in); their bodies still say their outcome.

Revision ID: 0017
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns: no row is rewritten, so the append-only triggers are not involved.
    op.add_column("audit_entries", sa.Column("outcome", sa.String(length=8), nullable=True))
    op.add_column("audit_entries", sa.Column("error", sa.String(length=64), nullable=True))
    op.add_column("audit_entries", sa.Column("purpose", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_audit_entries_refused",
        "audit_entries",
        ["seq"],
        sqlite_where=sa.text("outcome = 'refused'"),
        postgresql_where=sa.text("outcome = 'refused'"),
    )
    op.create_index(
        "ix_audit_entries_error",
        "audit_entries",
        ["error", "seq"],
        sqlite_where=sa.text("error IS NOT NULL"),
        postgresql_where=sa.text("error IS NOT NULL"),
    )
    op.add_column("audit_state", sa.Column("last_time", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_index("ix_audit_entries_error", table_name="audit_entries")
    op.drop_index("ix_audit_entries_refused", table_name="audit_entries")
    # Both engines drop a column in place (SQLite since 3.35); no table rebuild needed.
    op.execute("ALTER TABLE audit_entries DROP COLUMN purpose")
    op.execute("ALTER TABLE audit_entries DROP COLUMN error")
    op.execute("ALTER TABLE audit_entries DROP COLUMN outcome")
    op.execute("ALTER TABLE audit_state DROP COLUMN last_time")
