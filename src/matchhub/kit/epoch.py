"""Which history of the database a process talks to: the restore epoch.

A broker process keeps things by snapshot id outside the database: the lookups' view, the match
engine's loaded snapshots. A committed snapshot's rows never change, so that is safe within one
history of the database. A point-in-time restore starts another: ids are issued again, with
other rows. PostgreSQL marks every such history. A restore from a base backup and WAL archive,
and a promoted replica, run on a new **timeline**; a dump restored into a new cluster has a new
**system identifier**; an old copy of a data directory started in place goes back in **WAL
position**. Every new connection of the broker's engines reads the three (one cheap query,
once per connection: after a restore or a failover every connection is new), and the first
connection that finds another history calls the process's listeners before any query runs on
it, so nothing is read from the new history into what was kept from the old one.

SQLite, the embedded single-process default, has no such marks: restoring its file is done
with the broker stopped (deploy/README.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Engine, event

log = structlog.get_logger("matchhub.db")

# On a standby (never the broker's, whose URL asks for a read-write server) WAL functions fail;
# there the epoch is unknown and nothing is checked.
_EPOCH_SQL = (
    "SELECT (SELECT system_identifier FROM pg_control_system()), "
    "CASE WHEN pg_is_in_recovery() THEN NULL "
    "ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END, "
    "CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() - '0/0' END"
)


@dataclass(frozen=True)
class Epoch:
    system: int  # pg_control_system().system_identifier: one per initdb
    timeline: int  # a new one at every point-in-time recovery and every promotion

    def __str__(self) -> str:
        return f"{self.system}/{self.timeline}"


Listener = Callable[[Epoch, Epoch], None]


class EpochWatch:
    """Attach to each engine of a process; ``listeners`` run (in the connecting thread, before
    the connection is used) when a connection finds a history other than the one seen so far.
    A listener must not wait for another connection: other threads' connections wait for it."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []
        self.changes = 0
        self._known: Epoch | None = None
        self._lsn = 0
        self._lock = threading.Lock()

    @property
    def known(self) -> Epoch | None:
        return self._known

    def attach(self, engine: Engine) -> None:
        if engine.dialect.name == "postgresql":
            event.listen(engine, "connect", self._connected)

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(_EPOCH_SQL)
            system, timeline, lsn = cursor.fetchone()
        finally:
            cursor.close()
            if not dbapi_connection.autocommit:
                dbapi_connection.rollback()
        if timeline is None:
            return
        self.observe(Epoch(int(system), int(timeline, 16)), int(lsn))

    def observe(self, epoch: Epoch, lsn: int) -> None:
        with self._lock:
            known = self._known
            if known is not None and (epoch != known or lsn < self._lsn):
                self.changes += 1
                log.warning(
                    "the database is another history now (restored or failed over)",
                    was=str(known),
                    now=str(epoch),
                    wal_went_back=epoch == known,
                )
                for listener in self.listeners:
                    try:
                        listener(known, epoch)
                    except Exception:  # one listener's failure must not hide the others
                        log.exception("an epoch listener failed")
                self._lsn = lsn
            self._known = epoch
            self._lsn = max(self._lsn, lsn)
