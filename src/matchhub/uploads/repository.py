from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

import numpy as np
import psycopg
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from matchhub.identity.models import Agency
from matchhub.kit.models import utcnow
from matchhub.uploads.models import (
    Snapshot,
    Upload,
    UploadChunk,
    partition_name,
    roster_rows,
    snapshot_rows,
)

_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
# One row of binary COPY: 2 fields; an int4 snapshot id; a 16-byte token.
_PGCOPY_ROW_DTYPE = np.dtype(
    [
        ("fields", ">i2"),
        ("id_length", ">i4"),
        ("snapshot_id", ">i4"),
        ("token_length", ">i4"),
        ("token", "V16"),
    ]
)
_PGCOPY_ROSTER_ROW = struct.Struct(">hiiiii16si48s")  # 4 fields: id, ordinal, token, sealed
_PGCOPY_TRAILER = struct.pack(">h", -1)
DROP_LOCK_TIMEOUT = "250ms"
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout


class UploadRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # uploads and chunks

    def upload(self, upload_id: str, *, for_update: bool = False) -> Upload | None:
        stmt = select(Upload).where(Upload.id == upload_id)
        if for_update:
            stmt = stmt.with_for_update()
        return self.session.scalars(stmt).one_or_none()

    def lock_agency(self, agency_id: int) -> None:
        """Serialise commits of one agency (PostgreSQL row lock; SQLite writers are serial)."""
        self.session.execute(select(Agency.id).where(Agency.id == agency_id).with_for_update())

    def chunk(self, upload_id: str, seq: int) -> UploadChunk | None:
        return self.session.get(UploadChunk, (upload_id, seq))

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
            Snapshot.state.in_(("pending", "current", "superseded")),
        )
        return self.session.scalars(stmt).all()

    def open_uploads_under_key(self, version: str) -> Sequence[Upload]:
        stmt = select(Upload).where(Upload.key_version == version, Upload.state == "open")
        return self.session.scalars(stmt).all()

    def snapshots_of(self, upload_id: str) -> Sequence[Snapshot]:
        stmt = select(Snapshot).where(Snapshot.upload_id == upload_id).order_by(Snapshot.id)
        return self.session.scalars(stmt).all()

    def current(
        self, agency_id: int, kind: str, flag_codes: Iterable[str | None]
    ) -> Sequence[Snapshot]:
        stmt = select(Snapshot).where(
            Snapshot.agency_id == agency_id,
            Snapshot.kind == kind,
            Snapshot.state == "current",
        )
        codes = [c for c in flag_codes if c is not None]
        if codes:
            stmt = stmt.where(Snapshot.flag_code.in_(codes))
        return self.session.scalars(stmt).all()

    def set_state(self, snapshot_ids: Sequence[int], state: str, **values: object) -> None:
        if snapshot_ids:
            self.session.execute(
                update(Snapshot).where(Snapshot.id.in_(snapshot_ids)).values(state=state, **values)
            )

    def to_purge(self) -> Sequence[Snapshot]:
        """Snapshots whose rows no reader can see any more: replaced flag snapshots and the
        pending snapshots of aborted or expired uploads. Roster versions are kept: match jobs
        name the roster version they ran on."""
        stmt = select(Snapshot).where(
            (Snapshot.state == "discarded")
            | ((Snapshot.state == "superseded") & (Snapshot.kind == "flag"))
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

    def create_partition(self, snapshot_id: int) -> None:
        """PostgreSQL: the pending snapshot's own table, not yet attached, with no index. Its
        CHECK constraint lets the commit's ATTACH skip a validation scan."""
        if self.partitioned:
            name, sid = partition_name(snapshot_id), int(snapshot_id)
            self.session.execute(
                text(
                    f"CREATE TABLE {name} (LIKE snapshot_rows INCLUDING DEFAULTS, "
                    f"CONSTRAINT {name}_snapshot CHECK (snapshot_id = {sid}))"
                )
            )

    def attach_partition(self, snapshot_id: int) -> None:
        """PostgreSQL: make the snapshot's rows part of the table; builds its indexes."""
        if self.partitioned:
            name, sid = partition_name(snapshot_id), int(snapshot_id)
            self.session.execute(
                text(f"ALTER TABLE snapshot_rows ATTACH PARTITION {name} FOR VALUES IN ({sid})")
            )

    def insert_rows(self, snapshot_id: int, stored: bytes) -> None:
        """Bulk insert of one snapshot's stored tokens (16 bytes each): on PostgreSQL one
        binary COPY into the pending snapshot's own partition table, built without a loop."""
        if not stored:
            return
        tokens = np.frombuffer(stored, dtype="V16")
        connection = self.session.connection()
        if connection.dialect.name == "postgresql":
            rows = np.empty(len(tokens), dtype=_PGCOPY_ROW_DTYPE)
            rows["fields"], rows["id_length"], rows["snapshot_id"] = 2, 4, snapshot_id
            rows["token_length"], rows["token"] = 16, tokens
            payload = _PGCOPY_HEADER + rows.tobytes() + _PGCOPY_TRAILER
            self._copy(f"{partition_name(snapshot_id)} (snapshot_id, token)", payload)
            return
        connection.execute(
            insert(snapshot_rows),
            [{"snapshot_id": snapshot_id, "token": t.tobytes()} for t in tokens],
        )

    def insert_roster_rows(self, rows: Sequence[tuple[int, int, bytes, bytes]]) -> None:
        """Bulk insert of (snapshot id, ordinal, stored token, sealed token)."""
        if not rows:
            return
        connection = self.session.connection()
        if connection.dialect.name == "postgresql":
            payload = b"".join(
                [_PGCOPY_HEADER]
                + [
                    _PGCOPY_ROSTER_ROW.pack(4, 4, snapshot_id, 4, ordinal, 16, token, 48, sealed)
                    for snapshot_id, ordinal, token, sealed in rows
                ]
                + [_PGCOPY_TRAILER]
            )
            self._copy("roster_rows (snapshot_id, ordinal, token, sealed)", payload)
            return
        connection.execute(
            insert(roster_rows),
            [{"snapshot_id": s, "ordinal": o, "token": t, "sealed": x} for s, o, t, x in rows],
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
        if snapshot.kind == "flag" and self.partitioned:
            try:
                with self.session.begin_nested():
                    self.session.execute(text(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'"))
                    self.session.execute(
                        text(f"DROP TABLE IF EXISTS {partition_name(snapshot.id)}")
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
