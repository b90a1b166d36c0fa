"""flag catalogue, uploads, snapshots

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:01:04.550200
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "flags",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("asserted_by", sa.String(length=32), nullable=False),
        sa.Column("label_en", sa.String(length=200), nullable=False),
        sa.Column("label_ar", sa.String(length=200), nullable=False),
        sa.Column("rule_text", sa.Text(), nullable=False),
        sa.Column("rule_params", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_flags")),
    )
    op.create_table(
        "purposes",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("label_en", sa.String(length=200), nullable=False),
        sa.Column("label_ar", sa.String(length=200), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_purposes")),
    )
    op.create_table(
        "snapshot_rows",
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.LargeBinary(length=16), nullable=False),
    )
    with op.batch_alter_table("snapshot_rows", schema=None) as batch_op:
        batch_op.create_index("ix_snapshot_rows_token", ["token", "snapshot_id"], unique=False)

    op.create_table(
        "grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grantee", sa.String(length=100), nullable=False),
        sa.Column("flag_code", sa.String(length=64), nullable=False),
        sa.Column("purpose_code", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["flag_code"], ["flags.code"], name=op.f("fk_grants_flag_code_flags")
        ),
        sa.ForeignKeyConstraint(
            ["purpose_code"], ["purposes.code"], name=op.f("fk_grants_purpose_code_purposes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
        sa.UniqueConstraint("grantee", "flag_code", "purpose_code", name=op.f("uq_grants_grantee")),
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key_version", sa.String(length=64), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("expected_rows", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("rows_received", sa.Integer(), nullable=False),
        sa.Column("chunks_received", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_uploads_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["key_version"],
            ["matching_key_versions.version"],
            name=op.f("fk_uploads_key_version_matching_key_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
    )
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_uploads_agency_id"), ["agency_id"], unique=False)

    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("upload_id", sa.String(length=32), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("flag_code", sa.String(length=64), nullable=True),
        sa.Column("key_version", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_snapshots_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["flag_code"], ["flags.code"], name=op.f("fk_snapshots_flag_code_flags")
        ),
        sa.ForeignKeyConstraint(
            ["key_version"],
            ["matching_key_versions.version"],
            name=op.f("fk_snapshots_key_version_matching_key_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["upload_id"], ["uploads.id"], name=op.f("fk_snapshots_upload_id_uploads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshots")),
    )
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_snapshots_agency_state", ["agency_id", "kind", "state"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_snapshots_upload_id"), ["upload_id"], unique=False)

    op.create_table(
        "upload_chunks",
        sa.Column("upload_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"], ["uploads.id"], name=op.f("fk_upload_chunks_upload_id_uploads")
        ),
        sa.PrimaryKeyConstraint("upload_id", "seq", name=op.f("pk_upload_chunks")),
    )


def downgrade() -> None:

    op.drop_table("upload_chunks")
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snapshots_upload_id"))
        batch_op.drop_index("ix_snapshots_agency_state")

    op.drop_table("snapshots")
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uploads_agency_id"))

    op.drop_table("uploads")
    op.drop_table("grants")
    with op.batch_alter_table("snapshot_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_snapshot_rows_token")

    op.drop_table("snapshot_rows")
    op.drop_table("purposes")
    op.drop_table("flags")
