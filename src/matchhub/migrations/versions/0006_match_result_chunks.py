"""match results stored a chunk a row

A job's flagged ordinals were one row each, with a primary-key entry each: writing 400k of them
took longer than the join that found them. They are now stored as chunks of up to 65,536 (the
ordinals as little-endian int32, the source lists one a line). Existing results move across.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK_ROWS = 65_536  # matchhub.jobs.models.RESULT_CHUNK_ROWS when this was written


def upgrade() -> None:
    chunks = op.create_table(
        "match_result_chunks",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("ordinals", sa.LargeBinary(), nullable=False),
        sa.Column("sources", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "chunk", name=op.f("pk_match_result_chunks")),
    )
    bind = op.get_bind()
    old = sa.table("match_results", sa.column("job_id"), sa.column("ordinal"), sa.column("sources"))
    for job_id in bind.execute(sa.select(old.c.job_id).distinct()).scalars().all():
        rows = bind.execute(
            sa.select(old.c.ordinal, old.c.sources)
            .where(old.c.job_id == job_id)
            .order_by(old.c.ordinal)
        ).all()
        for n, start in enumerate(range(0, len(rows), CHUNK_ROWS)):
            part = rows[start : start + CHUNK_ROWS]
            bind.execute(
                chunks.insert().values(
                    job_id=job_id,
                    chunk=n,
                    rows=len(part),
                    ordinals=np.asarray([r[0] for r in part], "<i4").tobytes(),
                    sources="\n".join(str(r[1]) for r in part),
                )
            )
    op.drop_table("match_results")


def downgrade() -> None:
    old = op.create_table(
        "match_results",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("sources", sa.String(length=400), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "ordinal", name=op.f("pk_match_results")),
    )
    bind = op.get_bind()
    chunks = sa.table(
        "match_result_chunks",
        sa.column("job_id"),
        sa.column("chunk"),
        sa.column("ordinals"),
        sa.column("sources"),
    )
    stored = bind.execute(
        sa.select(chunks.c.job_id, chunks.c.ordinals, chunks.c.sources).order_by(
            chunks.c.job_id, chunks.c.chunk
        )
    )
    for job_id, ordinals, sources in stored.all():
        values = np.frombuffer(ordinals, dtype="<i4").tolist()
        if values:
            bind.execute(
                old.insert(),
                [
                    {"job_id": job_id, "ordinal": o, "sources": s}
                    for o, s in zip(values, sources.split("\n"), strict=True)
                ],
            )
    op.drop_table("match_result_chunks")
