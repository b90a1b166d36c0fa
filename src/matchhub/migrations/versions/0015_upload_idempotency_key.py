"""an idempotency key on opening an upload

A connector whose `POST /v1/uploads` answer was lost sends the same request again with the same
`Idempotency-Key`; the broker answers with the upload that first request opened instead of
opening a second one. The key is the agency's own: unique per agency, not across agencies.

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("uploads", sa.Column("idempotency_key", sa.String(length=64), nullable=True))
    op.create_index(
        "ux_uploads_agency_idempotency_key",
        "uploads",
        ["agency_id", "idempotency_key"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ux_uploads_agency_idempotency_key", table_name="uploads")
    op.execute("ALTER TABLE uploads DROP COLUMN idempotency_key")
