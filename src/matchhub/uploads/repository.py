"""Every query of uploads and snapshots. Which snapshots are current, the one thing every
reader of the hub depends on, is asked only through :class:`SnapshotRepository`."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import psycopg
from sqlalchemy import Row, and_, bindparam, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from matchhub.identity.models import Agency
from matchhub.kit.models import utcnow
from matchhub.kit.pgcopy import Layout
from matchhub.uploads.models import (
    Snapshot,
    SnapshotState,
    Upload,
    UploadChunk,
    partition_name,
    roster_rows,
    rows_table,
    snapshot_rows,
)

# Rows as binary COPY writes them (kit/pgcopy.py).
_SNAPSHOT_ROW = Layout(("snapshot_id", ">i4"), ("token", "V16"))
_ROSTER_ROW = Layout(
    ("snapshot_id", ">i4"), ("ordinal", ">i4"), ("token", "V16"), ("sealed", "V48")
)
# A roster row as SnapshotRows reads it out: the ordinal (int4send, big-endian), the token.
_ROSTER_PAIR = np.dtype([("ordinal", ">i4"), ("token", "V16")])
DROP_LOCK_TIMEOUT = "250ms"
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout


_CURRENT = Snapshot.state == SnapshotState.current

# The lookups' one statement (lookups/repository.py), built once with bound parameters:
# building a statement costs more than running it here. The flags current snapshots of the
# given flags assert of the given tokens, with the asserting kind and the snapshot date...
_FLAGGED = (
    select(snapshot_rows.c.token, Snapshot.flag_code, Agency.kind, Snapshot.as_of)
    .join(Snapshot, Snapshot.id == snapshot_rows.c.snapshot_id)
    .join(Agency, Agency.id == Snapshot.agency_id)
    .where(
        snapshot_rows.c.token.in_(bindparam("tokens", expanding=True)),
        _CURRENT,
        Snapshot.kind == "flag",
        Snapshot.flag_code.in_(bindparam("flags", expanding=True)),
    )
    .subquery()
)
_ROSTER = Snapshot.__table__.alias("roster")
# ...joined to the caller's current roster as the left side, so its row comes back (once, with
# NULLs) even when none of the tokens is on it: membership, flags and the roster's version in
# one trip.
_ROSTER_ANSWERS = (
    select(
        _ROSTER.c.id,
        _ROSTER.c.key_version,
        roster_rows.c.token,
        _FLAGGED.c.flag_code,
        _FLAGGED.c.kind,
        _FLAGGED.c.as_of,
    )
    .select_from(_ROSTER)
    .outerjoin(
        roster_rows,
        and_(
            roster_rows.c.snapshot_id == _ROSTER.c.id,
            roster_rows.c.token.in_(bindparam("tokens", expanding=True)),
        ),
    )
    .outerjoin(_FLAGGED, _FLAGGED.c.token == roster_rows.c.token)
    .where(
        _ROSTER.c.agency_id == bindparam("agency_id"),
        _ROSTER.c.kind == "roster",
        _ROSTER.c.state == SnapshotState.current,
    )
)
_CURRENT_LISTING = (
    select(
        Snapshot.id,
        Snapshot.agency_id,
        Snapshot.kind,
        Snapshot.flag_code,
        Snapshot.key_version,
        Snapshot.as_of,
        Snapshot.rows,
        Snapshot.upload_id,
        Agency.kind.label("agency_kind"),
    )
    .join(Agency, Agency.id == Snapshot.agency_id)
    .where(_CURRENT)
    .order_by(Snapshot.id)
)
# What a snapshot's segment must say it holds (uploads/segments.py).
_REFS = select(Snapshot.id, Snapshot.kind, Snapshot.rows, Snapshot.upload_id)


@dataclass(frozen=True)
class RosterRows:
    """A roster chunk's rows: its snapshot, the ordinal of its first row (the others follow),
    the stored tokens (16 bytes each) and the sealed ones (48 bytes each), in the same order."""

    snapshot_id: int
    first: int
    stored: bytes
    sealed: bytes

    def __post_init__(self) -> None:
        if len(self.stored) % 16 or len(self.sealed) != 3 * len(self.stored):
            raise ValueError("a stored token is 16 bytes and its sealed token 48")

    def __len__(self) -> int:
        return len(self.stored) // 16


class SnapshotRepository:
    """Which snapshots are current: what readers see (lookups, the lookup view, match jobs, the
    metrics) and what a commit replaces. A snapshot is current when its state is
    :attr:`SnapshotState.current`; no other module says so."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, snapshot_id: int) -> Snapshot | None:
        return self.session.get(Snapshot, snapshot_id)

    def current(
        self, agency_id: int, kind: str, flag_codes: Iterable[str | None]
    ) -> Sequence[Snapshot]:
        """The agency's current snapshots of ``kind`` (of these flags, for a flag kind)."""
        stmt = select(Snapshot).where(
            Snapshot.agency_id == agency_id, Snapshot.kind == kind, _CURRENT
        )
        codes = [c for c in flag_codes if c is not None]
        if codes:
            stmt = stmt.where(Snapshot.flag_code.in_(codes))
        return self.session.scalars(stmt).all()

    def current_roster(self, agency_id: int) -> Snapshot | None:
        stmt = select(Snapshot).where(
            Snapshot.agency_id == agency_id, Snapshot.kind == "roster", _CURRENT
        )
        return self.session.scalars(stmt).one_or_none()

    def current_sources(self, flag_codes: Sequence[str]) -> list[tuple[Snapshot, str]]:
        """Every provider's current snapshot of these flags, with the provider's kind."""
        stmt = (
            select(Snapshot, Agency.kind)
            .join(Agency, Agency.id == Snapshot.agency_id)
            .where(Snapshot.kind == "flag", _CURRENT, Snapshot.flag_code.in_(list(flag_codes)))
            .order_by(Snapshot.id)
        )
        return [(snapshot, kind) for snapshot, kind in self.session.execute(stmt).all()]

    def current_listing(self) -> list[Row[Any]]:
        """Every current snapshot's id, agency, kind, flag, key version, date, size and the
        agency's kind, in id order (what the lookup view loads)."""
        return list(self.session.connection().execute(_CURRENT_LISTING))

    def segment_refs(self, snapshot_ids: Collection[int]) -> list[Row[Any]]:
        """(id, kind, rows, upload_id) of these snapshots, whatever their state: what a
        segment of each must say it holds (uploads/segments.py)."""
        stmt = _REFS.where(Snapshot.id.in_(list(snapshot_ids)))
        return list(self.session.connection().execute(stmt))

    def current_among(self, snapshot_ids: Collection[int]) -> set[int]:
        """Which of these snapshots are current."""
        stmt = select(Snapshot.id).where(Snapshot.id.in_(list(snapshot_ids)), _CURRENT)
        return set(self.session.scalars(stmt))

    def current_refs(self) -> list[Row[Any]]:
        """(id, kind, rows, upload_id) of every current snapshot."""
        return list(self.session.connection().execute(_REFS.where(_CURRENT)))

    def no_longer_current(self, snapshot_ids: Collection[int]) -> list[int]:
        """Which of these snapshots are not current any more."""
        stmt = select(Snapshot.id).where(Snapshot.id.in_(list(snapshot_ids)), ~_CURRENT)
        return list(self.session.scalars(stmt))

    def count_current(self) -> dict[str, int]:
        """Current snapshots by kind (``flag``, ``roster``)."""
        stmt = select(Snapshot.kind, func.count()).where(_CURRENT).group_by(Snapshot.kind)
        return {kind: int(n) for kind, n in self.session.execute(stmt).all()}

    def roster_answers(
        self, agency_id: int, tokens: Collection[bytes], flag_codes: Collection[str]
    ) -> Sequence[Row[Any, Any, Any, Any, Any, Any]]:
        """Rows of (roster id, roster key version, token or NULL, flag, kind, as_of): the
        agency's current roster, which of ``tokens`` (stored form) are on it, and each flag a
        current snapshot of one of ``flag_codes`` asserts of a member. No row: no roster."""
        params = {"agency_id": agency_id, "tokens": list(tokens), "flags": list(flag_codes)}
        return self.session.connection().execute(_ROSTER_ANSWERS, params).all()


class UploadRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # uploads and chunks

    def count_open(self, agency_id: int, now: datetime) -> int:
        """The agency's uploads open now (not yet expired)."""
        stmt = select(func.count()).where(
            Upload.agency_id == agency_id, Upload.state == "open", Upload.expires_at > now
        )
        return int(self.session.scalar(stmt) or 0)

    def upload(self, upload_id: str, *, for_update: bool = False) -> Upload | None:
        stmt = select(Upload).where(Upload.id == upload_id)
        if for_update:
            stmt = stmt.with_for_update()
        return self.session.scalars(stmt).one_or_none()

    def by_idempotency_key(self, agency_id: int, key: str) -> Upload | None:
        stmt = select(Upload).where(Upload.agency_id == agency_id, Upload.idempotency_key == key)
        return self.session.scalars(stmt).one_or_none()

    def add_keyed(self, upload: Upload) -> bool:
        """Add an upload that carries an idempotency key; False (and nothing added) when
        another request added one with the same key first."""
        try:
            with self.session.begin_nested():
                self.session.add(upload)
                self.session.flush()
        except IntegrityError:
            return False
        return True

    def lock_agency(self, agency_id: int) -> None:
        """Serialise commits of one agency (PostgreSQL row lock; SQLite writers are serial)."""
        self.session.execute(select(Agency.id).where(Agency.id == agency_id).with_for_update())

    def chunk(self, upload_id: str, seq: int) -> UploadChunk | None:
        return self.session.get(UploadChunk, (upload_id, seq))

    def chunk_digests(self, upload_id: str) -> list[tuple[int, str]]:
        """(seq, hex SHA-256) of every chunk received, in sequence order."""
        stmt = (
            select(UploadChunk.seq, UploadChunk.sha256)
            .where(UploadChunk.upload_id == upload_id)
            .order_by(UploadChunk.seq)
        )
        return [(int(seq), str(digest)) for seq, digest in self.session.execute(stmt)]

    def add(self, obj: Upload | UploadChunk | Snapshot) -> None:
        self.session.add(obj)
        self.session.flush()

    def open_uploads_expired(self, now: datetime) -> Sequence[Upload]:
        stmt = select(Upload).where(Upload.state == "open", Upload.expires_at < now)
        return self.session.scalars(stmt).all()

    # snapshots

    def snapshots_under_key(self, version: str) -> Sequence[Snapshot]:
        stmt = select(Snapshot).where(
            Snapshot.key_version == version,
            Snapshot.state.in_(
                (SnapshotState.pending, SnapshotState.current, SnapshotState.superseded)
            ),
        )
        return self.session.scalars(stmt).all()

    def open_uploads_under_key(self, version: str) -> Sequence[Upload]:
        stmt = select(Upload).where(Upload.key_version == version, Upload.state == "open")
        return self.session.scalars(stmt).all()

    def snapshots_of(self, upload_id: str) -> Sequence[Snapshot]:
        stmt = select(Snapshot).where(Snapshot.upload_id == upload_id).order_by(Snapshot.id)
        return self.session.scalars(stmt).all()

    def set_state(
        self, snapshot_ids: Sequence[int], state: SnapshotState, **values: object
    ) -> None:
        if snapshot_ids:
            self.session.execute(
                update(Snapshot).where(Snapshot.id.in_(snapshot_ids)).values(state=state, **values)
            )

    def to_purge(self) -> Sequence[Snapshot]:
        """Snapshots whose rows no reader can see any more: replaced flag snapshots and the
        pending snapshots of aborted or expired uploads. Roster versions are kept: match jobs
        name the roster version they ran on."""
        stmt = select(Snapshot).where(
            (Snapshot.state == SnapshotState.discarded)
            | ((Snapshot.state == SnapshotState.superseded) & (Snapshot.kind == "flag"))
        )
        return self.session.scalars(stmt).all()

    def clock(self) -> datetime:
        """Now, by the database's clock where it has one (PostgreSQL), else this process's."""
        if self.partitioned:
            return cast(datetime, self.session.scalar(select(func.clock_timestamp())))
        return utcnow()

    def oldest_other_transaction(self) -> datetime | None:
        """PostgreSQL: when the oldest transaction still open on this database (other than this
        one) began; None when there is none, and always on SQLite, whose readers keep their
        own snapshot of deleted rows (WAL) and never lose a table under them."""
        if not self.partitioned:
            return None
        return cast(
            datetime | None,
            self.session.scalar(
                text(
                    "SELECT min(xact_start) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ),
        )

    # rows

    @property
    def partitioned(self) -> bool:
        return self.session.connection().dialect.name == "postgresql"

    def create_partition(self, snapshot_id: int, kind: str) -> None:
        """PostgreSQL: the pending snapshot's own table (``snapshot_rows``' for a provider's,
        ``roster_rows``' for a roster), not yet attached, with no index. Its CHECK constraint
        lets the commit's ATTACH skip a validation scan."""
        if self.partitioned:
            name, sid = partition_name(snapshot_id, kind), int(snapshot_id)
            self.session.execute(
                text(
                    f"CREATE TABLE {name} (LIKE {rows_table(kind)} INCLUDING DEFAULTS, "
                    f"CONSTRAINT {name}_snapshot CHECK (snapshot_id = {sid}))"
                )
            )

    def attach_partition(self, snapshot_id: int, kind: str) -> None:
        """PostgreSQL: make the snapshot's rows part of the table; builds its indexes (a
        roster's key among them, which its rows then must satisfy)."""
        if self.partitioned:
            name, sid = partition_name(snapshot_id, kind), int(snapshot_id)
            self.session.execute(
                text(
                    f"ALTER TABLE {rows_table(kind)} ATTACH PARTITION {name} FOR VALUES IN ({sid})"
                )
            )

    def insert_rows(self, snapshot_id: int, stored: bytes) -> None:
        """Bulk insert of one snapshot's stored tokens (16 bytes each): on PostgreSQL one
        binary COPY into the pending snapshot's own partition table, built without a loop."""
        if not stored:
            return
        tokens = np.frombuffer(stored, dtype="V16")
        connection = self.session.connection()
        if connection.dialect.name == "postgresql":
            columns: dict[str, npt.ArrayLike] = {"snapshot_id": snapshot_id, "token": tokens}
            payload = _SNAPSHOT_ROW.encode(columns, len(tokens))
            self._copy(f"{partition_name(snapshot_id)} (snapshot_id, token)", payload)
            return
        connection.execute(
            insert(snapshot_rows),
            [{"snapshot_id": snapshot_id, "token": t.tobytes()} for t in tokens],
        )

    def insert_roster_rows(self, rows: RosterRows) -> None:
        """Bulk insert of a roster chunk's rows."""
        if not len(rows):
            return
        ordinals = np.arange(rows.first, rows.first + len(rows), dtype=np.int64)
        tokens = np.frombuffer(rows.stored, dtype="V16")
        sealed = np.frombuffer(rows.sealed, dtype="V48")
        connection = self.session.connection()
        if connection.dialect.name == "postgresql":
            columns: dict[str, npt.ArrayLike] = {
                "snapshot_id": rows.snapshot_id,
                "ordinal": ordinals,
                "token": tokens,
                "sealed": sealed,
            }
            payload = _ROSTER_ROW.encode(columns, len(rows))
            name = partition_name(rows.snapshot_id, "roster")
            self._copy(f"{name} (snapshot_id, ordinal, token, sealed)", payload)
            return
        connection.execute(
            insert(roster_rows),
            [
                {"snapshot_id": rows.snapshot_id, "ordinal": o, "token": t, "sealed": x}
                for o, t, x in zip(
                    ordinals.tolist(), map(bytes, tokens), map(bytes, sealed), strict=True
                )
            ],
        )

    def _copy(self, target: str, payload: bytes) -> None:
        raw = cast(psycopg.Connection[Any], self.session.connection().connection.driver_connection)
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {target} FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.write(payload)

    def delete_rows(self, snapshot: Snapshot) -> int | None:
        """Delete a snapshot's rows; ``None`` if its partition is in use, to try again later.

        Dropping a partition takes an exclusive lock on the partitioned table, and while the
        DROP waits for a reader (a lookup view's load, a match job's cold load) every later
        reader queues behind it. So the DROP waits at most ``DROP_LOCK_TIMEOUT``, then gives
        way: the purge is retried after the commit and by the janitor."""
        if self.partitioned:
            try:
                with self.session.begin_nested():
                    self.session.execute(text(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'"))
                    self.session.execute(
                        text(f"DROP TABLE IF EXISTS {partition_name(snapshot.id, snapshot.kind)}")
                    )
                    self.session.execute(text("SET LOCAL lock_timeout TO DEFAULT"))
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                    return None
                raise
            return snapshot.rows
        table = roster_rows if snapshot.kind == "roster" else snapshot_rows
        result = self.session.execute(delete(table).where(table.c.snapshot_id == snapshot.id))
        return int(getattr(result, "rowcount", 0) or 0)

    def count_rows(self, snapshot_id: int) -> int:
        stmt = (
            select(func.count())
            .select_from(snapshot_rows)
            .where(snapshot_rows.c.snapshot_id == snapshot_id)
        )
        return int(self.session.scalar(stmt) or 0)


class SnapshotRows:
    """A committed snapshot's stored rows, read out whole: what a segment is built from.

    On PostgreSQL the rows come back as a few large ``bytea`` values, each the concatenation
    (``string_agg``) of the rows in one range of the table's pages (a TID range scan), not as
    a binary COPY: COPY sends a message for each row, which the client takes one at a time in
    Python, about 0.7 s of this process's CPU (holding the GIL) for 1M rows against 0.01 s for
    the same rows aggregated (docs/benchmarks.md). A range of ``PIECE_PAGES`` pages holds at
    most 291 rows a page (PostgreSQL's MaxHeapTuplesPerPage), so a value stays far below the
    1 GB a ``bytea`` may hold. The ranges are read in one transaction (a block of its own on an
    autocommit connection), whose lock on the table keeps a rewrite (VACUUM FULL, CLUSTER) from
    moving rows between them, and the segment's writer checks the count against the snapshot's
    own (kit/segments.py)."""

    PIECE_PAGES = 16_384  # at most 4.8M rows: 76 MB of a provider's tokens, 95 MB of a roster's

    def __init__(self, session: Session) -> None:
        self.session = session

    def provider_tokens(self, snapshot_id: int) -> bytes:
        if self.session.connection().dialect.name == "postgresql":
            return self._aggregate(
                "snapshot_rows", "token", snapshot_id, pages_of=partition_name(snapshot_id)
            )
        stmt = select(snapshot_rows.c.token).where(snapshot_rows.c.snapshot_id == snapshot_id)
        return b"".join(bytes(t) for t in self.session.scalars(stmt))

    def roster_tokens(self, snapshot_id: int) -> tuple[np.ndarray, bytes]:
        """The roster's ordinals and stored tokens (not its sealed tokens)."""
        if self.session.connection().dialect.name == "postgresql":
            data = self._aggregate(
                "roster_rows",
                "int4send(ordinal) || token",
                snapshot_id,
                pages_of=partition_name(snapshot_id, "roster"),
            )
            rows = np.frombuffer(data, dtype=_ROSTER_PAIR)
            return rows["ordinal"].astype(np.int32), rows["token"].tobytes()
        stmt = select(roster_rows.c.ordinal, roster_rows.c.token).where(
            roster_rows.c.snapshot_id == snapshot_id
        )
        pairs = self.session.execute(stmt).all()
        return (
            np.asarray([p[0] for p in pairs], dtype=np.int32),
            b"".join(bytes(p[1]) for p in pairs),
        )

    def _aggregate(self, table: str, row: str, snapshot_id: int, *, pages_of: str) -> bytes:
        """``row`` (fixed width) of the snapshot's rows in ``table``, concatenated, in no
        particular order, one range of the pages of ``pages_of`` (the table that holds them:
        a provider snapshot's partition) at a time. A partition already dropped (its snapshot
        purged) has no pages and no rows: the answer is empty, as the segment's count check
        then says."""
        raw = cast(psycopg.Connection[Any], self.session.connection().connection.driver_connection)
        # Both names come from this module, never from a request.
        select_rows = f"SELECT string_agg({row}, ''::bytea) FROM {table} "  # noqa: S608
        pieces: list[bytes] = []
        # One transaction for every range, also on an autocommit connection (the lookup
        # view's read-only engine): the lock its first read takes on the table is held until
        # the last, so a rewrite (VACUUM FULL, CLUSTER) cannot move rows from a range not yet
        # read into one already read, which would give the right count of the wrong rows.
        with raw.transaction(), raw.cursor(binary=True) as cursor:
            cursor.execute(
                "SELECT pg_relation_size(to_regclass(%s)) / current_setting('block_size')::int",
                (pages_of,),
            )
            found = cursor.fetchone()
            pages = int(found[0]) if found and found[0] is not None else 0
            for start in range(0, pages + 1, self.PIECE_PAGES):
                # The last range is open: it takes pages added since they were counted.
                last = start + self.PIECE_PAGES > pages
                cursor.execute(
                    select_rows
                    + "WHERE snapshot_id = %s AND ctid >= %s::tid"
                    + ("" if last else " AND ctid < %s::tid"),
                    (
                        snapshot_id,
                        f"({start},0)",
                        *(() if last else (f"({start + self.PIECE_PAGES},0)",)),
                    ),
                )
                value = cursor.fetchone()
                if value and value[0] is not None:
                    pieces.append(value[0])
        return b"".join(pieces)
