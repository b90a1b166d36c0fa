"""Audit proofs from the stored subtree roots (audit_nodes, migration 0014), on SQLite and
PostgreSQL: byte for byte the proofs the in-memory Merkle code makes from every leaf, read
from O(log n) rows."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from matchhub.audit import service as audit
from matchhub.audit.models import AuditEntry, audit_nodes
from matchhub.keystore.material import load_key_material
from matchhub.protocol import merkle
from tests.conftest import Hub

ENTRIES = 300


@pytest.fixture
def logged(hub: Hub) -> tuple[Hub, list[bytes]]:
    """A log of ENTRIES entries (and the one `matchhub init` wrote), appended in batches as
    the audit writer appends them, and its leaf hashes."""
    keys = audit.keys_from(load_key_material(hub.paths), hub.settings.hub_name, 64)
    with hub.session() as session:
        for batch in range(0, ENTRIES, 37):
            audit.append_many(
                session,
                keys,
                [
                    audit.PendingEntry("request", {"n": n})
                    for n in range(batch, min(batch + 37, ENTRIES))
                ],
            )
    with hub.session() as session:
        leaves = [
            bytes(h) for h in session.scalars(select(AuditEntry.leaf_hash).order_by(AuditEntry.seq))
        ]
        stored = session.scalar(select(func.count()).select_from(audit_nodes))
    assert stored == len(leaves) - len(leaves).bit_count()  # every subtree above the leaves
    return hub, leaves


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.integers(min_value=0, max_value=10**6), min_size=3, max_size=3))
def test_proofs_are_the_in_memory_proofs(logged: tuple[Hub, list[bytes]], picks: list[int]) -> None:
    hub, leaves = logged
    size = 1 + picks[0] % len(leaves)
    seq, old = picks[1] % size, picks[2] % (size + 1)
    tree = leaves[:size]
    with hub.session() as session:
        inclusion = audit.inclusion(session, seq, size)
        consistency = audit.consistency(session, old, size)
    assert inclusion == {
        "seq": seq,
        "tree_size": size,
        "leaf_hash": tree[seq].hex(),
        "root": merkle.root(tree).hex(),
        "proof": [h.hex() for h in merkle.inclusion_proof(seq, tree)],
    }
    assert consistency == {
        "old_size": old,
        "new_size": size,
        "old_root": merkle.root(leaves[:old]).hex(),
        "new_root": merkle.root(tree).hex(),
        "proof": [h.hex() for h in merkle.consistency_proof(old, tree)],
    }
