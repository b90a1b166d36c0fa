"""
Resume state: which upload a connector has open, for which inputs.

When a push is interrupted (the process killed, the network gone), the broker keeps the open
upload and the chunks it received. To continue rather than start over, the connector records
the open upload's id in ``<state-dir>/<agency code>.<kind>.json`` together with a digest of
everything that determines the chunks' bytes (definition, extract, matching-key version and
fingerprint, the rules applied, format, chunk size, broker, agency). A rerun with the same
inputs computes the same digest, finds the upload still open, and resumes it; the broker says
which chunk it expects next. Any other inputs start a new upload (and abort the stale one), so a
half-sent old extract is never completed with chunks of a new one.

The file holds no identifier, no token and no key: an upload id, a digest, a key version and
counts. It is written atomically (a temporary file renamed into place), so a kill at any moment
leaves the old state or the new, never a torn file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["STATE_FORMAT", "PushState", "StateError", "StateFile", "inputs_digest"]

STATE_FORMAT = "matchhub-connect-state/1"


class StateError(Exception):
    """The state file exists but cannot be used; the message names it."""


@dataclass(frozen=True)
class PushState:
    upload_id: str
    digest: str
    broker: str
    key_version: str
    rows: int
    opened_at: str


def inputs_digest(**parts: Any) -> str:
    """SHA-256 of the canonical JSON of `parts`: equal exactly when every input is equal."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class StateFile:
    """The state of one agency's pushes of one definition kind, in `folder`."""

    def __init__(self, folder: Path, code: str, kind: str) -> None:
        self.path = folder / f"{code}.{kind}.json"

    def read(self) -> PushState | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read the resume state: {exc.strerror}") from None
        document: object = None
        with contextlib.suppress(ValueError):
            document = json.loads(data)
        if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
            raise StateError(
                f"{self.path}: not a {STATE_FORMAT} file; delete it to start a new upload"
            )
        try:
            return PushState(**{k: v for k, v in document.items() if k != "format"})
        except TypeError:
            raise StateError(
                f"{self.path}: unexpected fields; delete it to start a new upload"
            ) from None

    def write(self, state: PushState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        payload = json.dumps({"format": STATE_FORMAT, **asdict(state)}, indent=2) + "\n"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(temporary, flags, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
