"""match results compressed with LZ4 on PostgreSQL

A job's results are a few rows of large values (65,536 ordinals and their source lists a row),
which PostgreSQL compresses when it stores them. Its default method, pglz, took 33 ms to store
the 217k results of a 1M-row roster's job, a fifth of the job; LZ4 takes 6 ms, for about an
eighth more space (issue 18). Only where the server was built with LZ4 (PostgreSQL's Debian
packages are); elsewhere, and on SQLite, nothing changes. Rows already stored keep their
compression until they are written again (results are deleted after their retention period).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HAS_LZ4 = text(
    "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
)


def _set(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not bind.execute(_HAS_LZ4).scalar():
        return
    op.execute(
        f"ALTER TABLE match_result_chunks ALTER COLUMN ordinals SET COMPRESSION {method}, "
        f"ALTER COLUMN sources SET COMPRESSION {method}"
    )


def upgrade() -> None:
    _set("lz4")


def downgrade() -> None:
    _set("pglz")
