"""Appending to the audit log, checkpoints, proofs and export. No HTTP, no commit: an entry
commits with the action it records, or neither does (fail closed)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert, select, text, tuple_
from sqlalchemy.orm import Session

from matchhub.audit.models import (
    AuditCheckpoint,
    AuditEntry,
    AuditState,
    audit_nodes,
    audit_subjects,
)
from matchhub.keystore.material import KeyMaterial
from matchhub.kit.errors import NotFound, ServiceUnavailable, UnprocessableEntity
from matchhub.kit.models import utcnow
from matchhub.protocol import merkle
from matchhub.protocol.canonical import canonical
from matchhub.protocol.checkpoint import format_verifier_key, sign_checkpoint

STATE_ID = 1
RESERVED = frozenset({"seq", "time", "kind", "subjects"})
SUBJECT_DIGEST_BYTES = 16


@dataclass(frozen=True)
class AuditKeys:
    origin: str
    signer: Ed25519PrivateKey = field(repr=False)
    subject_key: bytes = field(repr=False)
    checkpoint_every: int = 1000

    @property
    def verifier_key(self) -> str:
        return format_verifier_key(self.origin, self.signer.public_key())

    def subject(self, wire_token_hex: str) -> str:
        """A keyed digest of a token: an auditor who holds the token can find every access to
        the person; a copy of the log alone reveals no one."""
        mac = hmac.new(self.subject_key, bytes.fromhex(wire_token_hex), hashlib.sha256)
        return mac.digest()[:SUBJECT_DIGEST_BYTES].hex()

    def answer(self, wire_token_hex: str, flag: str) -> str:
        """A keyed digest of one flag answered for a token, kept in a lookup's entry so a case
        opened from that lookup can be checked against what it said (cases/service.py), while
        the log alone shows no one's flags. Domain-separated from :meth:`subject`."""
        mac = hmac.new(self.subject_key, b"matchhub answer\x00", hashlib.sha256)
        mac.update(bytes.fromhex(wire_token_hex))
        mac.update(flag.encode("ascii"))
        return mac.digest()[:SUBJECT_DIGEST_BYTES].hex()


def origin_for(hub_name: str) -> str:
    return f"{hub_name}.matchhub/audit"


def keys_from(material: KeyMaterial, hub_name: str, checkpoint_every: int = 1000) -> AuditKeys:
    return AuditKeys(
        origin=origin_for(hub_name),
        signer=material.audit_signing_key,
        subject_key=material.audit_subject_key.value,
        checkpoint_every=checkpoint_every,
    )


def record_admin(session: Session, keys: AuditKeys, action: str, **details: Any) -> int:
    """An operator change, in the transaction that makes it."""
    return append(
        session,
        keys,
        kind="admin",
        agency=None,
        route=None,
        body={"actor": "operator", "action": action, **details},
    )


def _state(session: Session) -> AuditState:
    stmt = select(AuditState).where(AuditState.id == STATE_ID).with_for_update()
    state = session.scalars(stmt).one_or_none()
    if state is None:
        raise ServiceUnavailable("the audit log is not initialised", code="audit_unavailable")
    return state


@dataclass(frozen=True)
class PendingEntry:
    """One entry to append: what the caller says; the log adds seq, time and kind."""

    kind: str
    body: dict[str, Any]
    agency: str | None = None
    route: str | None = None
    subjects: Sequence[str] = ()
    # The staff member named by the caller's desk (Matchhub-End-User), if any.
    end_user: str | None = None
    # For an answer computed from the lookups' view: the view generation it was computed at.
    # The group-commit writer appends the entry only if that is still the database's.
    generation: int | None = None


def append(
    session: Session,
    keys: AuditKeys,
    *,
    kind: str,
    body: dict[str, Any],
    agency: str | None = None,
    route: str | None = None,
    subjects: Sequence[str] = (),
    end_user: str | None = None,
) -> int:
    """Append one entry in the caller's transaction; returns its sequence number."""
    entry = PendingEntry(kind, body, agency, route, subjects, end_user=end_user)
    return append_many(session, keys, [entry])[0]


def append_many(session: Session, keys: AuditKeys, entries: Sequence[PendingEntry]) -> list[int]:
    """Append entries in order, in the caller's transaction; returns their sequence numbers.

    The state row is locked first (``FOR UPDATE`` on PostgreSQL; SQLite serialises writers), so
    concurrent appenders get consecutive sequence numbers and one frontier. A checkpoint is
    signed whenever ``checkpoint_every`` entries have passed since the last one.
    """
    for pending in entries:
        clash = RESERVED & pending.body.keys()
        if clash:
            raise ValueError(f"audit entry fields {sorted(clash)} are the log's own")
    # The action's own changes first: every transaction then takes the row locks its changes
    # need (the view generation's among them, migration 0008) before the log's, and two
    # transactions never wait on each other in opposite orders.
    session.flush()
    state = _state(session)
    frontier = merkle.CompactRange.from_dict(state.frontier)
    rows: list[dict[str, Any]] = []
    subject_rows: list[dict[str, Any]] = []
    nodes: list[tuple[int, int, bytes]] = []
    seqs: list[int] = []
    for pending in entries:
        now = utcnow()
        seq = state.size
        entry = {
            **pending.body,
            "seq": seq,
            "time": now.isoformat(timespec="microseconds"),
            "kind": pending.kind,
        }
        if pending.agency is not None:
            entry.setdefault("agency", pending.agency)
        if pending.route is not None:
            entry.setdefault("route", pending.route)
        if pending.end_user is not None:
            # In the hashed body, so the name of who acted is as tamper-evident as the act.
            entry["end_user"] = pending.end_user
        digests = sorted(set(pending.subjects))
        if digests:
            entry["subjects"] = digests
        data = canonical(entry)
        leaf = merkle.leaf_hash(data)
        frontier.append(leaf, nodes)
        rows.append(
            {
                "seq": seq,
                "created_at": now,
                "kind": pending.kind,
                "agency": pending.agency,
                "route": pending.route,
                "end_user": pending.end_user,
                "body": data.decode(),
                "leaf_hash": leaf,
            }
        )
        subject_rows.extend({"digest": d, "seq": seq} for d in digests)
        seqs.append(seq)
        state.size = seq + 1
        if state.size - state.checkpoint_size >= keys.checkpoint_every:
            # The entries up to here go in first: a checkpoint never covers a missing leaf.
            _insert(session, rows, subject_rows, nodes)
            rows, subject_rows, nodes = [], [], []
            _sign(session, keys, state, frontier)
    _insert(session, rows, subject_rows, nodes)
    state.frontier = frontier.to_dict()
    session.flush()
    return seqs


# PostgreSQL: one statement a batch, its columns as arrays. psycopg's executemany sends one
# statement a row, and a lookup's ten subject digests made that most of the writer's time.
_INSERT_ENTRIES = text(
    "INSERT INTO audit_entries (seq, created_at, kind, agency, route, end_user, body, leaf_hash) "
    "SELECT * FROM unnest(CAST(:seq AS bigint[]), CAST(:created_at AS timestamptz[]), "
    "CAST(:kind AS varchar[]), CAST(:agency AS varchar[]), CAST(:route AS varchar[]), "
    "CAST(:end_user AS varchar[]), CAST(:body AS text[]), CAST(:leaf_hash AS bytea[]))"
)
_INSERT_SUBJECTS = text(
    "INSERT INTO audit_subjects (digest, seq) "
    "SELECT * FROM unnest(CAST(:digest AS varchar[]), CAST(:seq AS bigint[]))"
)
_INSERT_NODES = text(
    "INSERT INTO audit_nodes (level, idx, hash) "
    "SELECT * FROM unnest(CAST(:level AS smallint[]), CAST(:idx AS bigint[]), "
    "CAST(:hash AS bytea[]))"
)


def _insert(
    session: Session,
    rows: list[dict[str, Any]],
    subject_rows: list[dict[str, Any]],
    nodes: list[tuple[int, int, bytes]],
) -> None:
    """Entries, their subject digests, and the subtree roots they completed."""
    node_rows = [{"level": level, "idx": idx, "hash": h} for level, idx, h in nodes]
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        for statement, batch in (
            (_INSERT_ENTRIES, rows),
            (_INSERT_SUBJECTS, subject_rows),
            (_INSERT_NODES, node_rows),
        ):
            if batch:
                connection.execute(statement, {k: [r[k] for r in batch] for k in batch[0]})
        return
    if rows:
        session.execute(insert(AuditEntry), rows)
    if subject_rows:
        session.execute(insert(audit_subjects), subject_rows)
    if node_rows:
        session.execute(insert(audit_nodes), node_rows)


def _sign(
    session: Session, keys: AuditKeys, state: AuditState, frontier: merkle.CompactRange
) -> AuditCheckpoint:
    root = frontier.root()
    note = sign_checkpoint(keys.origin, state.size, root, keys.origin, keys.signer)
    checkpoint = AuditCheckpoint(size=state.size, root=root, note=note, created_at=utcnow())
    session.add(checkpoint)
    state.checkpoint_size = state.size
    session.flush()
    return checkpoint


def checkpoint(session: Session, keys: AuditKeys, *, fresh: bool = True) -> AuditCheckpoint:
    """The latest signed checkpoint; with ``fresh``, first sign one if the log has grown."""
    state = _state(session)
    if fresh and (state.size > state.checkpoint_size or state.size == 0):
        existing = session.get(AuditCheckpoint, state.size)
        if existing is not None:
            return existing
        return _sign(session, keys, state, merkle.CompactRange.from_dict(state.frontier))
    latest = session.get(AuditCheckpoint, state.checkpoint_size)
    if latest is None:
        return _sign(session, keys, state, merkle.CompactRange.from_dict(state.frontier))
    return latest


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    """The latest signed checkpoint, read without a lock and without signing: what the
    witness route serves (checkpoints are signed every ``audit_checkpoint_every`` entries and
    by the janitor when entries have waited ``audit_checkpoint_seconds``)."""
    stmt = select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc()).limit(1)
    return session.scalars(stmt).first()


def checkpoint_if_stale(session: Session, keys: AuditKeys, older_than: datetime) -> None:
    """The janitor's time-based checkpoint: sign when entries have waited long enough."""
    state = _state(session)
    if state.size == state.checkpoint_size:
        return
    latest = session.get(AuditCheckpoint, state.checkpoint_size)
    if latest is None or latest.created_at < older_than:
        _sign(session, keys, state, merkle.CompactRange.from_dict(state.frontier))


def size(session: Session) -> int:
    state = session.get(AuditState, STATE_ID)
    return state.size if state else 0


def _roots(session: Session, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """The root of each range of leaves ``(lo, hi)`` of a proof or a tree: the stored roots of
    the perfect subtrees that make it up (level 0: the entries' leaf hashes), folded. One
    query for the leaves and one for the rest, O(log n) rows, never the whole log."""
    parts = [merkle.subtrees(lo, hi) for lo, hi in ranges]
    wanted = {key for part in parts for key in part}
    found: dict[tuple[int, int], bytes] = {}
    leaves = sorted(idx for level, idx in wanted if level == 0)
    if leaves:
        stmt = select(AuditEntry.seq, AuditEntry.leaf_hash).where(AuditEntry.seq.in_(leaves))
        found.update(((0, seq), bytes(h)) for seq, h in session.execute(stmt))
    inner = sorted(key for key in wanted if key[0] > 0)
    if inner:
        nodes = select(audit_nodes.c.level, audit_nodes.c.idx, audit_nodes.c.hash).where(
            tuple_(audit_nodes.c.level, audit_nodes.c.idx).in_(inner)
        )
        found.update(((int(r.level), int(r.idx)), bytes(r.hash)) for r in session.execute(nodes))
    if len(found) != len(wanted):
        raise ServiceUnavailable(
            "the audit log's stored tree is incomplete", code="audit_unavailable"
        )
    return [merkle.fold([found[key] for key in part]) for part in parts]


def _check_size(session: Session, tree_size: int) -> None:
    if not 0 <= tree_size <= size(session):
        raise UnprocessableEntity(
            f"the log has no tree of size {tree_size}", code="invalid_tree_size"
        )


def inclusion(session: Session, seq: int, tree_size: int) -> dict[str, Any]:
    _check_size(session, tree_size)
    if not 0 <= seq < tree_size:
        raise NotFound(f"no entry {seq} in a tree of size {tree_size}", code="entry_not_found")
    leaf, tree, *proof = _roots(
        session, [(seq, seq + 1), (0, tree_size), *merkle.inclusion_ranges(seq, tree_size)]
    )
    return {
        "seq": seq,
        "tree_size": tree_size,
        "leaf_hash": leaf.hex(),
        "root": tree.hex(),
        "proof": [h.hex() for h in proof],
    }


def consistency(session: Session, old_size: int, new_size: int) -> dict[str, Any]:
    _check_size(session, new_size)
    if not 0 <= old_size <= new_size:
        raise UnprocessableEntity("the old size must not exceed the new", code="invalid_tree_size")
    old_root, new_root, *proof = _roots(
        session,
        [(0, old_size), (0, new_size), *merkle.consistency_ranges(old_size, new_size)],
    )
    return {
        "old_size": old_size,
        "new_size": new_size,
        "old_root": old_root.hex(),
        "new_root": new_root.hex(),
        "proof": [h.hex() for h in proof],
    }


def entries(
    session: Session,
    *,
    agency: str | None = None,
    route: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    subject: str | None = None,
    end_user: str | None = None,
    after: int = -1,
    limit: int = 100,
) -> list[AuditEntry]:
    stmt = select(AuditEntry).where(AuditEntry.seq > after)
    if end_user:
        stmt = stmt.where(AuditEntry.end_user == end_user)
    if agency:
        stmt = stmt.where(AuditEntry.agency == agency)
    if route:
        stmt = stmt.where(AuditEntry.route == route)
    if since:
        stmt = stmt.where(AuditEntry.created_at >= since)
    if until:
        stmt = stmt.where(AuditEntry.created_at < until)
    if subject:
        stmt = stmt.where(
            AuditEntry.seq.in_(
                select(audit_subjects.c.seq).where(audit_subjects.c.digest == subject)
            )
        )
    return list(session.scalars(stmt.order_by(AuditEntry.seq).limit(limit)))


def export(session: Session, keys: AuditKeys, out: Path) -> tuple[int, int]:
    """Entries and checkpoints to files an auditor verifies offline (``matchhub audit
    verify``). A fresh checkpoint is signed first, so every exported entry is covered."""
    checkpoint(session, keys, fresh=True)
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    with (out / "entries.jsonl").open("w", encoding="utf-8") as f:
        stmt = select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=5000)
        for entry in session.scalars(stmt):
            f.write(
                json.dumps(
                    {
                        "seq": entry.seq,
                        "leaf_hash": bytes(entry.leaf_hash).hex(),
                        "body": entry.body,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
            count += 1
    notes = list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size)))
    with (out / "checkpoints.jsonl").open("w", encoding="utf-8") as f:
        for cp in notes:
            f.write(json.dumps({"size": cp.size, "note": cp.note}) + "\n")
    (out / "verifier.key").write_text(keys.verifier_key + "\n")
    return count, len(notes)
