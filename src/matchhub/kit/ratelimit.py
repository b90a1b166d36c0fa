"""A token bucket per key (an agency), in process memory.

Lookups are rate-limited so the broker cannot be used as an oracle for the whole population.
Each broker process keeps its own buckets: with N processes an agency gets at most N times the
rate, which the deployment notes account for (deploy/README.md).
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
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take one request; 0.0 if allowed, else the seconds to wait before the next."""
        with self._lock:
            now = self.clock()
            level, then = self._buckets.get(key, (self.burst, now))
            level = min(self.burst, level + (now - then) * self.rate)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1.0 - level) / self.rate


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
