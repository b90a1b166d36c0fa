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
from sqlalchemy import (
    Date,
    Integer,
    bindparam,
    case,
    cast,
    extract,
    func,
    insert,
    literal_column,
    select,
    text,
    tuple_,
    update,
)
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


@dataclass
class _StateRow:
    """The state row as :func:`append_many` reads and writes it: plain values, no ORM object."""

    size: int
    frontier: dict[str, Any]
    checkpoint_size: int
    last_time: datetime | None


_STATE = AuditState.metadata.tables[AuditState.__tablename__]
_READ_STATE = (
    select(_STATE.c.size, _STATE.c.frontier, _STATE.c.checkpoint_size, _STATE.c.last_time)
    .where(_STATE.c.id == STATE_ID)
    .with_for_update()
)
_WRITE_STATE = (
    update(_STATE)
    .where(_STATE.c.id == STATE_ID)
    .values(
        size=bindparam("size"),
        frontier=bindparam("frontier"),
        checkpoint_size=bindparam("checkpoint_size"),
        last_time=bindparam("last_time"),
    )
)


def _locked_state(session: Session) -> _StateRow:
    """:func:`_state` through Core: a batch of the audit writer reads and writes the row once,
    and the ORM's loading and flushing of it was most of the writer's fixed cost a batch."""
    row = session.connection().execute(_READ_STATE).one_or_none()
    if row is None:
        raise ServiceUnavailable("the audit log is not initialised", code="audit_unavailable")
    return _StateRow(*row)


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
    # A request's outcome (accepted or refused) and a refusal's error code, for the filters.
    outcome: str | None = None
    error: str | None = None
    purpose: str | None = None


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
    state = _locked_state(session)
    frontier = merkle.CompactRange.from_dict(state.frontier)
    rows: list[dict[str, Any]] = []
    subject_rows: list[dict[str, Any]] = []
    nodes: list[tuple[int, int, bytes]] = []
    seqs: list[int] = []
    last = state.last_time
    for pending in entries:
        # Never earlier than the entry before: a period is then one range of sequence numbers.
        now = utcnow() if last is None else max(utcnow(), last)
        last = now
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
                "outcome": pending.outcome,
                "error": pending.error,
                "purpose": pending.purpose,
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
    state_values = {
        "size": state.size,
        "frontier": frontier.to_dict(),
        "checkpoint_size": state.checkpoint_size,
        "last_time": last,
    }
    _insert(session, rows, subject_rows, nodes, state_values)
    # A state object this session loaded before is now behind the row: read it again if used.
    loaded = session.identity_map.get(Session.identity_key(AuditState, STATE_ID))
    if loaded is not None:
        session.expire(loaded)
    return seqs


# PostgreSQL: one statement a batch for the entries, their subject digests and the subtree
# roots, each set of rows one JSON parameter, and with the batch's last rows the log's state
# row. psycopg's executemany sends one statement a row (a lookup's ten subject digests made that
# most of the writer's time), and its text arrays escape every quote of every body in Python,
# most of an entry's cost to the writer; JSON is encoded in C here and parsed by the server.
# Each statement is a round trip, whose CPU (the loopback's, the driver's) was most of the audit
# writer's cost a batch: four statements were four.
_ENTRIES_PG = (
    "entries AS (INSERT INTO audit_entries "
    "(seq, created_at, kind, agency, route, end_user, outcome, error, purpose, body, leaf_hash) "
    "SELECT seq, created_at, kind, agency, route, end_user, outcome, error, purpose, body, "
    "decode(leaf_hash, 'hex') FROM json_to_recordset(CAST(:entries AS json)) AS e(seq bigint, "
    "created_at timestamptz, kind varchar, agency varchar, route varchar, end_user varchar, "
    "outcome varchar, error varchar, purpose varchar, body text, leaf_hash text)), "
    "subjects AS (INSERT INTO audit_subjects (digest, seq) SELECT digest, seq "
    "FROM json_to_recordset(CAST(:subjects AS json)) AS s(digest varchar, seq bigint)) "
)
_NODES_PG = (
    "INSERT INTO audit_nodes (level, idx, hash) SELECT level, idx, decode(hash, 'hex') "
    "FROM json_to_recordset(CAST(:nodes AS json)) AS n(level smallint, idx bigint, hash text)"
)
_STATE_PG = (
    ", state AS (UPDATE audit_state SET size = :size, frontier = :frontier, "
    "checkpoint_size = :checkpoint_size, last_time = :last_time WHERE id = :state_id) "
)
_INSERT_PG = text("WITH " + _ENTRIES_PG + _NODES_PG)
_INSERT_PG_AND_STATE = text("WITH " + _ENTRIES_PG + _STATE_PG + _NODES_PG).bindparams(
    # As _WRITE_STATE binds them.
    bindparam("frontier", type_=_STATE.c.frontier.type),
    bindparam("last_time", type_=_STATE.c.last_time.type),
)


def _json_rows(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"))


def _insert(
    session: Session,
    rows: list[dict[str, Any]],
    subject_rows: list[dict[str, Any]],
    nodes: list[tuple[int, int, bytes]],
    state: dict[str, Any] | None = None,
) -> None:
    """Entries, their subject digests, and the subtree roots they completed; and ``state``, the
    log's state row's new values (:data:`_WRITE_STATE`), if given."""
    connection = session.connection()
    if connection.dialect.name == "postgresql" and (rows or subject_rows or nodes):
        entries = [
            {**r, "created_at": r["created_at"].isoformat(), "leaf_hash": r["leaf_hash"].hex()}
            for r in rows
        ]
        node_rows = [{"level": level, "idx": idx, "hash": h.hex()} for level, idx, h in nodes]
        connection.execute(
            _INSERT_PG if state is None else _INSERT_PG_AND_STATE,
            {
                "entries": _json_rows(entries),
                "subjects": _json_rows(subject_rows),
                "nodes": _json_rows(node_rows),
                **({} if state is None else {**state, "state_id": STATE_ID}),
            },
        )
        return
    if rows:
        session.execute(insert(AuditEntry), rows)
    if subject_rows:
        session.execute(insert(audit_subjects), subject_rows)
    if nodes:
        node_rows = [{"level": level, "idx": idx, "hash": h} for level, idx, h in nodes]
        session.execute(insert(audit_nodes), node_rows)
    if state is not None:
        connection.execute(_WRITE_STATE, state)


def _sign(
    session: Session,
    keys: AuditKeys,
    state: AuditState | _StateRow,
    frontier: merkle.CompactRange,
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


@dataclass(frozen=True)
class EntryFilter:
    """What an auditor asks of the log; every field optional. ``since`` is inclusive, ``until``
    exclusive; ``subject`` is a subject digest (never a token)."""

    agency: str | None = None
    route: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    subject: str | None = None
    end_user: str | None = None
    outcome: str | None = None
    error: str | None = None


def _period_bounds(session: Session, since: datetime | None, until: datetime | None) -> range:
    """The sequence numbers of the entries in a period.

    Entry times never go back in sequence order (``append_many``), so the period's entries are
    one range, its ends found through ``ix_audit_entries_time`` in two index probes however
    long the log; the filters then page within it by sequence number.
    """
    first, stop = 0, size(session)
    if since is not None:
        first = _first_at(session, since, stop)
    if until is not None:
        stop = _first_at(session, until, stop)
    return range(first, max(first, stop))


def _first_at(session: Session, moment: datetime, otherwise: int) -> int:
    """The first entry at or after ``moment`` (``otherwise`` if none is)."""
    found = session.scalar(
        select(AuditEntry.seq)
        .where(AuditEntry.created_at >= moment)
        .order_by(AuditEntry.created_at, AuditEntry.seq)
        .limit(1)
    )
    return otherwise if found is None else int(found)


def entries(
    session: Session,
    query: EntryFilter | None = None,
    *,
    after: int = -1,
    limit: int = 100,
    newest_first: bool = False,
) -> list[AuditEntry]:
    """One page of entries, by sequence number: after ``after`` (oldest first), or before it
    (``newest_first``; ``after=-1`` starts at the newest). Keyset paging: each page is an index
    range scan from the cursor, as fast on the last page of a long log as on the first."""
    query = query or EntryFilter()
    bounds = _period_bounds(session, query.since, query.until)
    stmt = select(AuditEntry).where(AuditEntry.seq >= bounds.start, AuditEntry.seq < bounds.stop)
    if after >= 0:
        stmt = stmt.where(AuditEntry.seq < after if newest_first else AuditEntry.seq > after)
    if query.end_user:
        stmt = stmt.where(AuditEntry.end_user == query.end_user)
    if query.agency:
        stmt = stmt.where(AuditEntry.agency == query.agency)
    if query.route:
        stmt = stmt.where(AuditEntry.route == query.route)
    if query.outcome:
        # Inline, not a parameter: PostgreSQL uses the partial index of refusals only when the
        # query itself says ``outcome = 'refused'`` (a generic plan cannot know the value).
        stmt = stmt.where(
            AuditEntry.outcome == bindparam("outcome", query.outcome, literal_execute=True)
        )
    if query.error:
        stmt = stmt.where(AuditEntry.error == query.error)
    key: Any = AuditEntry.seq
    if query.subject:
        # From the person's own index entries (digest, seq), in their order: a person looked up
        # a few times in a log of tens of millions costs a few index rows, not a scan.
        stmt = stmt.join(audit_subjects, audit_subjects.c.seq == AuditEntry.seq).where(
            audit_subjects.c.digest == query.subject
        )
        key = audit_subjects.c.seq
    return list(session.scalars(stmt.order_by(key.desc() if newest_first else key).limit(limit)))


LOOKUP_ROUTE = "/v1/lookups"
ACTIVITY_WORK_MEM = "64MB"
ACTIVITY_SUBJECTS_MAX = 500
"""People listed as looked up by many staff members, most staff first."""


def _local_time(session: Session, offset_minutes: int) -> tuple[Any, Any, Any]:
    """An entry's local day (text), ISO weekday (1 Monday ... 7 Sunday) and hour, ``offset``
    minutes from UTC (Iraq keeps +180 all year), in the session's SQL dialect."""
    offset = int(offset_minutes)
    if session.get_bind().dialect.name == "postgresql":
        local: Any = literal_column(
            f"(audit_entries.created_at AT TIME ZONE 'UTC' + interval '{offset} minutes')"
        )
        return (
            cast(local, Date),
            cast(extract("isodow", local), Integer),
            cast(extract("hour", local), Integer),
        )
    local = func.datetime(AuditEntry.created_at, f"{offset:+d} minutes")  # SQLite
    weekday = cast(func.strftime("%w", local), Integer)
    return (
        func.date(local),
        case((weekday == 0, 7), else_=weekday),
        cast(func.strftime("%H", local), Integer),
    )


def activity(
    session: Session,
    since: datetime,
    until: datetime,
    *,
    offset_minutes: int,
    many_staff: int,
) -> dict[str, Any]:
    """What the auditors' anomaly page and report need of a period, counted by the database:
    requests per local day, agency, staff member, route, outcome, error and purpose; people
    looked up per staff member; accepted lookups per local weekday and hour and staff member;
    and the people (subject digests) looked up by at least ``many_staff`` staff members."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        # Room to hash the groups in memory: with the default 4 MB a day's groups are sorted
        # on disk, three times slower. Reset below: the connection goes back to the pool.
        session.execute(text(f"SET work_mem = '{ACTIVITY_WORK_MEM}'"))
    try:
        return _activity(session, since, until, offset_minutes, many_staff)
    finally:
        if postgresql:
            session.execute(text("RESET work_mem"))


def _activity(
    session: Session, since: datetime, until: datetime, offset_minutes: int, many_staff: int
) -> dict[str, Any]:
    bounds = _period_bounds(session, since, until)
    in_period = (AuditEntry.seq >= bounds.start, AuditEntry.seq < bounds.stop)
    day, weekday, hour = _local_time(session, offset_minutes)
    columns = (
        day,
        AuditEntry.agency,
        AuditEntry.end_user,
        AuditEntry.route,
        AuditEntry.outcome,
        AuditEntry.error,
        AuditEntry.purpose,
    )
    requests = session.execute(
        select(*columns, func.count()).where(*in_period).group_by(*columns)
    ).all()
    lookups = (*in_period, AuditEntry.route == LOOKUP_ROUTE, AuditEntry.outcome == "accepted")
    hours = session.execute(
        select(weekday, hour, AuditEntry.agency, AuditEntry.end_user, func.count())
        .where(*lookups)
        .group_by(weekday, hour, AuditEntry.agency, AuditEntry.end_user)
    ).all()
    joined = (
        select()
        .select_from(audit_subjects)
        .join(AuditEntry, AuditEntry.seq == audit_subjects.c.seq)
    )
    subject_period = (audit_subjects.c.seq >= bounds.start, audit_subjects.c.seq < bounds.stop)
    people = session.execute(
        joined.add_columns(AuditEntry.agency, AuditEntry.end_user, func.count())
        .where(*subject_period, *lookups[2:])
        .group_by(AuditEntry.agency, AuditEntry.end_user)
    ).all()
    staff = func.count(func.distinct(func.coalesce(AuditEntry.end_user, "")))
    widely = session.execute(
        joined.add_columns(audit_subjects.c.digest, staff, func.count())
        .where(*subject_period, *lookups[2:])
        .group_by(audit_subjects.c.digest)
        .having(staff >= many_staff)
        .order_by(staff.desc(), audit_subjects.c.digest)
        .limit(ACTIVITY_SUBJECTS_MAX)
    ).all()
    who: dict[str, set[str]] = {row[0]: set() for row in widely}
    if who:
        for digest, end_user in session.execute(
            joined.add_columns(audit_subjects.c.digest, AuditEntry.end_user)
            .where(*subject_period, *lookups[2:], audit_subjects.c.digest.in_(list(who)))
            .distinct()
        ):
            who[digest].add(end_user or "")
    return {
        "first_seq": bounds.start,
        "stop_seq": bounds.stop,
        "requests": [
            dict(
                zip(
                    ("day", "agency", "end_user", "route", "outcome", "error", "purpose", "count"),
                    (str(r[0]), *r[1:]),
                    strict=True,
                )
            )
            for r in requests
        ],
        "hours": [
            {
                "weekday": int(r[0]),
                "hour": int(r[1]),
                "agency": r[2],
                "end_user": r[3],
                "count": int(r[4]),
            }
            for r in hours
        ],
        "people": [{"agency": r[0], "end_user": r[1], "count": int(r[2])} for r in people],
        "widely": [
            {"subject": r[0], "staff": sorted(who[r[0]]), "count": int(r[2])} for r in widely
        ],
    }


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
