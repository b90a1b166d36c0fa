"""This process's heartbeat row (fleet/models.py), and what the others' rows tell it.

Each ``matchhub serve`` and ``matchhub worker`` announces itself when it starts and stamps its
row every ``MATCHHUB_HEARTBEAT_SECONDS``; a row not stamped for three beats is a process that
is gone (killed, or its host lost), and rows an hour old are deleted. The serving processes
alive set each one's share of the agencies' lookup rate (kit/ratelimit.py). The beat is one
UPDATE and one small SELECT per process per interval, off every request's path.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable
from datetime import timedelta

import structlog
from sqlalchemy.orm import Session, sessionmaker

from matchhub.fleet.models import BrokerProcess
from matchhub.fleet.repository import FleetRepository
from matchhub.kit.db import session_scope
from matchhub.kit.models import utcnow

log = structlog.get_logger("matchhub.fleet")

LIVE_BEATS = 3
PRUNE_AFTER = timedelta(hours=1)


class Fleet:
    def __init__(
        self,
        factory: sessionmaker[Session],
        role: str,
        *,
        interval: float,
        on_serving: Callable[[int], None] | None = None,
    ) -> None:
        self.id = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"
        self.role = role
        self.counts: dict[str, int] = {role: 1}
        self._factory = factory
        self._interval = interval
        self._on_serving = on_serving
        self._started = utcnow()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        """Announce this process and read the others' rows before it serves, so its first
        requests already hold the right share; then beat in the background."""
        try:
            self.beat()
        except Exception:  # a database not up yet: the heartbeat thread keeps trying
            log.exception("could not announce this process")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        try:
            with session_scope(self._factory) as session:
                FleetRepository(session).forget(self.id)
        except Exception:  # leaving: the row ages out if it cannot be removed
            log.warning("could not remove this process's heartbeat row", exc_info=True)

    def beat(self) -> None:
        now = utcnow()
        with session_scope(self._factory) as session:
            repo = FleetRepository(session)
            if not repo.seen(self.id, now):
                repo.announce(
                    BrokerProcess(
                        id=self.id,
                        role=self.role,
                        host=socket.gethostname()[:255],
                        pid=os.getpid(),
                        started_at=self._started,
                        seen_at=now,
                    )
                )
            counts = repo.live(now - timedelta(seconds=LIVE_BEATS * self._interval))
            repo.prune(now - PRUNE_AFTER)
        self.counts = counts
        if self._on_serving is not None:
            self._on_serving(max(1, counts.get("serve", 0)))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.beat()
            except Exception:  # the database is away: keep the last share, try again
                log.warning("heartbeat failed", exc_info=True)
