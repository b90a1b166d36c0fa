"""The running SHA-256 of each open upload's chunk bodies, in this process's memory only:
what checks the first form of the commit digest (``sha256``, of the bodies concatenated).

The bodies hold wire tokens and never reach disk, and a hash state cannot be persisted without
the tail of the last body, so this state cannot be shared between processes or survive a
restart. The commit's second form, ``chunks_sha256`` (protocol/wire.py), is recomputed from the
per-chunk digests the database keeps, so any process checks it; this one is checked only by a
process that has fed every chunk, in order, from chunk 0 (a re-sent chunk feeds it too).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class _State:
    position: int  # how many chunks (0..position-1) the hash has consumed
    hash: Any


class RunningDigests:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}

    def position(self, upload_id: str) -> int:
        with self._lock:
            state = self._states.get(upload_id)
            return state.position if state else 0

    def advance(self, upload_id: str, seq: int, body: bytes) -> None:
        """Feed chunk ``seq`` if it is the next one; anything else is a retry and is ignored."""
        with self._lock:
            state = self._states.setdefault(upload_id, _State(0, hashlib.sha256()))
            if state.position == seq:
                state.hash.update(body)
                state.position += 1

    def hexdigest(self, upload_id: str) -> tuple[int, str]:
        with self._lock:
            state = self._states.get(upload_id)
            if state is None:
                return 0, hashlib.sha256().hexdigest()
            return state.position, state.hash.copy().hexdigest()

    def clear(self) -> None:
        """The database was restored: what was fed may no longer be what it holds."""
        with self._lock:
            self._states.clear()

    def forget(self, upload_id: str) -> None:
        with self._lock:
            self._states.pop(upload_id, None)
