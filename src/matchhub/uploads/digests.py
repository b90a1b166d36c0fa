"""The running SHA-256 of each open upload's chunk bodies, kept in memory only.

The commit carries the SHA-256 of all chunk bodies in sequence order. The bodies hold wire
tokens, which never reach disk, and a hash state cannot be persisted without the tail of the
last body, so the running state lives in this process. After a broker restart it is gone: the
upload's ``next_seq`` drops back to 0 and the client re-sends from there. Chunks already stored
are recognised by their per-chunk digest, fed to the hash and not stored twice, so a resume
after a restart costs bandwidth, never correctness.

Several broker processes need upload requests of one upload to reach one process (session
affinity on the upload id); see deploy/README.md.
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

    def forget(self, upload_id: str) -> None:
        with self._lock:
            self._states.pop(upload_id, None)
