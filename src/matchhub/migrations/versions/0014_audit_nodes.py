"""the audit log's stored subtree roots, so a proof reads O(log n) rows

``audit_nodes`` holds the root of every perfect subtree of the Merkle tree above its leaves,
written as each completes (audit/service.py); an inclusion or consistency proof is then the
fold of O(log n) of them (protocol/merkle.py), where it used to read every leaf hash and hash
the whole tree. Append-only, like the entries. The upgrade computes the nodes of the log as it
stands, from its leaf hashes in order, and checks them against the stored frontier.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from matchhub.protocol import merkle

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 20_000

nodes = sa.table(
    "audit_nodes",
    sa.column("level", sa.SmallInteger),
    sa.column("idx", sa.BigInteger),
    sa.column("hash", sa.LargeBinary),
)


def upgrade() -> None:
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_audit_nodes")),
    )
    _backfill()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER audit_nodes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
            "ON audit_nodes FOR EACH STATEMENT EXECUTE FUNCTION matchhub_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_nodes_no_{action.lower()} BEFORE {action} ON audit_nodes "
                "BEGIN SELECT RAISE(ABORT, 'audit_nodes is append-only'); END"
            )


def _backfill() -> None:
    """The nodes of the log as it stands: its leaves in order, appended to a fresh frontier."""
    bind = op.get_bind()
    frontier = merkle.CompactRange()
    completed: list[tuple[int, int, bytes]] = []
    leaves = bind.execute(
        sa.text("SELECT leaf_hash FROM audit_entries ORDER BY seq").execution_options(
            yield_per=BATCH
        )
    )
    for (leaf,) in leaves:
        frontier.append(bytes(leaf), completed)
        if len(completed) >= BATCH:
            _insert(bind, completed)
            completed = []
    _insert(bind, completed)
    stored = bind.execute(sa.text("SELECT frontier FROM audit_state WHERE id = 1")).first()
    if stored is not None and merkle.CompactRange.from_dict(_json(stored.frontier)) != frontier:
        raise RuntimeError(
            "the audit log's leaves do not give its stored frontier: the log has been "
            "altered; restore it before upgrading (docs/audit.md)"
        )


def _json(value: Any) -> dict[str, Any]:
    return dict(json.loads(value) if isinstance(value, str) else value)


def _insert(bind: sa.Connection, completed: list[tuple[int, int, bytes]]) -> None:
    if completed:
        bind.execute(
            sa.insert(nodes), [{"level": lv, "idx": i, "hash": h} for lv, i, h in completed]
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_nodes_append_only ON audit_nodes")
    else:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_nodes_no_{action}")
    op.drop_table("audit_nodes")
