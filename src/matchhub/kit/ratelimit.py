"""A token bucket per key (an agency), in process memory, holding this process's share.

Lookups are rate-limited so the broker cannot be used as an oracle for the whole population.
The limit is the agency's across every serving process: each process keeps its own buckets
with ``1/N`` of the rate and of the burst, N being the serving processes alive (their heartbeat
rows, web/fleet.py, set it with :meth:`RateLimiter.set_share`). No database round trip is
added to a lookup. The tolerance this buys is stated in docs/deployment.md: with requests
spread evenly the sum over processes is the limit; a process that has not yet seen a new one
arrive admits its old share for up to one heartbeat; requests of one agency that all reach one
process get only that process's share (a stricter limit, never a looser one).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.clock = rate, float(burst), clock
        self.share = 1
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def set_share(self, processes: int) -> None:
        """Hold ``1/processes`` of the rate and the burst from now on."""
        with self._lock:
            self.share = max(1, processes)

    def acquire(self, key: str) -> float:
        """Take one request; 0.0 if allowed, else the seconds to wait before the next."""
        with self._lock:
            rate, burst = self.rate / self.share, max(1.0, self.burst / self.share)
            now = self.clock()
            level, then = self._buckets.get(key, (burst, now))
            level = min(burst, level + (now - then) * rate)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1.0 - level) / rate


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
