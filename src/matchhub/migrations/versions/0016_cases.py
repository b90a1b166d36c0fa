"""cases: due process for an indication, its history, notice periods and feedback counts

A consumer opens a case on a flagged roster member; the broker holds its re-keyed token, flag
codes, sources, as-of dates, states, deadlines, reason codes and end-user ids (no names, no free
text) and enforces the state machine (cases/service.py). ``case_feedback`` keeps the confirmed
and refuted counts per provider, consumer, flag, month and reason, so they outlive the cases'
retention. ``case_notice_periods`` is the operator's response period per purpose.

Revision ID: 0016
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = (
    "indication",
    "verifying",
    "confirmed",
    "refuted",
    "notified",
    "responded",
    "decided",
    "closed",
    "lapsed",
)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("lookup_seq", sa.BigInteger(), nullable=True),
        sa.Column("token", sa.LargeBinary(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("verification", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("opened_by", sa.String(length=64), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lapses_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notice_days", sa.Integer(), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ({})".format(", ".join(f"'{s}'" for s in STATES)),
            name=op.f("ck_cases_state"),
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_cases_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["purpose"], ["purposes.code"], name=op.f("fk_cases_purpose_purposes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    op.create_index("ix_cases_agency_state", "cases", ["agency_id", "state", "opened_at"])
    op.create_index("ix_cases_state_closed", "cases", ["state", "closed_at"])
    op.create_index(op.f("ix_cases_token"), "cases", ["token"])
    op.create_table(
        "case_flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_flags_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["agencies.id"], name=op.f("fk_case_flags_provider_id_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_flags")),
    )
    op.create_index(op.f("ix_case_flags_case_id"), "case_flags", ["case_id"])
    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("end_user", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_events_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_events")),
    )
    op.create_index(op.f("ix_case_events_case_id"), "case_events", ["case_id"])
    op.create_table(
        "case_notice_periods",
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["purpose"], ["purposes.code"], name=op.f("fk_case_notice_periods_purpose_purposes")
        ),
        sa.PrimaryKeyConstraint("purpose", name=op.f("pk_case_notice_periods")),
    )
    op.create_table(
        "case_feedback",
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("consumer_id", sa.Integer(), nullable=False),
        sa.Column("flag", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("indications", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["agencies.id"], name=op.f("fk_case_feedback_provider_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["consumer_id"], ["agencies.id"], name=op.f("fk_case_feedback_consumer_id_agencies")
        ),
        sa.PrimaryKeyConstraint(
            "provider_id",
            "consumer_id",
            "flag",
            "month",
            "outcome",
            "reason",
            name=op.f("pk_case_feedback"),
        ),
    )


def downgrade() -> None:
    op.drop_table("case_feedback")
    op.drop_table("case_notice_periods")
    op.drop_index(op.f("ix_case_events_case_id"), table_name="case_events")
    op.drop_table("case_events")
    op.drop_index(op.f("ix_case_flags_case_id"), table_name="case_flags")
    op.drop_table("case_flags")
    op.drop_index(op.f("ix_cases_token"), table_name="cases")
    op.drop_index("ix_cases_state_closed", table_name="cases")
    op.drop_index("ix_cases_agency_state", table_name="cases")
    op.drop_table("cases")
