"""The one clock the broker's rules read: deadlines, lapses and retention.

Every rule that depends on the time (a case's response deadline, an indication lapsing,
closed cases and job results past their retention) asks a :class:`Clock`, never
``datetime.now``. The app makes one (``create_app(settings, clock=...)``, kept as
``app.state.clock``) and hands the same object to its background work, so a test moves one
clock forward instead of sleeping, and the route and the scheduled pass see the same time.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class Clock:
    """The real time, moved by ``offset``: zero in production, set by tests with
    :meth:`advance` or :meth:`set`. Thread-safe: routes, the job runner and the janitor read it
    from their own threads."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            offset = self._offset
        return datetime.now(UTC) + offset

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward (or back, with a negative delta); the new time."""
        with self._lock:
            self._offset += delta
        return self.now()

    def set(self, when: datetime) -> None:
        """From now on the clock reads ``when`` plus the real time that passes."""
        if when.tzinfo is None:
            raise ValueError("the clock keeps UTC: give an aware datetime")
        with self._lock:
            self._offset = when - datetime.now(UTC)

    def __repr__(self) -> str:
        return f"Clock(offset={self._offset})"
