"""
The audit witness hook: where a connector checks the broker's audit log on each push.

The design (docs/design.md) asks for every push to be appended to a hash-chained, signed audit
log. A connector that fetches the broker's signed checkpoint before it pushes and again after
its commit, checks both signatures against the hub's audit public key and checks that the
second log extends the first (an RFC 9162 consistency proof) and contains its own commit (an
inclusion proof) is a *witness*: a broker that rewrote or forked its history would be caught by
the agencies themselves, not only by an auditor reading an export later.

The push calls `Witness.before_push` once the broker is reached and before the upload is
opened, and `Witness.after_commit` after the commit; the report shows the outcome. `ApiWitness`
does it with ``GET /v1/audit/checkpoint`` and ``GET /v1/audit/proofs/consistency``, which every
agency may call; a failed check stops the connector with a non-zero exit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from matchhub.protocol.checkpoint import Checkpoint, CheckpointError
from matchhub.protocol.checkpoint import Witness as CheckpointWitness

__all__ = ["ApiWitness", "AuditApiPending", "Witness", "WitnessError", "WitnessOutcome"]


@dataclass(frozen=True)
class WitnessOutcome:
    checked: bool
    summary: str


class Witness(Protocol):
    def before_push(self, client: httpx.Client) -> None:
        """Record the broker's signed checkpoint before anything is sent."""

    def after_commit(self, client: httpx.Client, upload: Mapping[str, Any]) -> WitnessOutcome:
        """Check the new checkpoint against the recorded one and the commit's inclusion."""


class AuditApiPending:
    """A witness that checks nothing and says so (``--no-witness``)."""

    def before_push(self, client: httpx.Client) -> None:
        return None

    def after_commit(self, client: httpx.Client, upload: Mapping[str, Any]) -> WitnessOutcome:
        return WitnessOutcome(checked=False, summary="not checked (--no-witness)")


class WitnessError(Exception):
    """The broker's audit log failed a witness check: rollback, fork or rewritten history."""


class ApiWitness:
    """Checks the broker's signed audit checkpoint before the push and after the commit.

    The state (the last checkpoint accepted, and the log's verifier key) lives in ``folder``.
    The verifier key is the one given (``--audit-key``, distributed with the agency's
    certificate) or, failing that, the one the broker named on first contact (trust on first
    use), pinned from then on: a later checkpoint signed by another key is refused.
    """

    def __init__(self, folder: Path, pinned_key: str | None = None) -> None:
        self.folder = folder
        self.pinned_key = pinned_key
        self.start: int | None = None

    def _check(self, client: httpx.Client) -> Checkpoint:
        response = client.get("/v1/audit/checkpoint")
        if response.status_code != 200:
            raise WitnessError(
                f"the broker did not give its audit checkpoint ({response.status_code})"
            )
        latest = response.json()
        key_file = self.folder / "audit-verifier.key"
        key = self.pinned_key or (
            key_file.read_text().strip() if key_file.exists() else latest["verifier_key"]
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        if not key_file.exists():
            key_file.write_text(key + "\n")
        witness = CheckpointWitness(self.folder / "audit-witness.json", key, latest["origin"])
        known = witness.checkpoint
        proof: list[bytes] = []
        if known is not None and 0 < known.size < latest["size"]:
            answer = client.get(
                "/v1/audit/proofs/consistency",
                params={"old_size": known.size, "new_size": latest["size"]},
            )
            if answer.status_code != 200:
                raise WitnessError("the broker did not give a consistency proof")
            proof = [bytes.fromhex(h) for h in answer.json()["proof"]]
        try:
            return witness.update(latest["note"], proof)
        except CheckpointError as exc:
            raise WitnessError(
                f"the broker's audit log failed the witness check ({exc.reason.value}): {exc}"
            ) from None

    def before_push(self, client: httpx.Client) -> None:
        self.start = self._check(client).size

    def after_commit(self, client: httpx.Client, upload: Mapping[str, Any]) -> WitnessOutcome:
        after = self._check(client)
        if after.size == self.start:  # the broker signs its log every minute or so
            summary = (
                f"checked: the signed audit log ({after.size} entries) is the one checked "
                "before the push; the push's own entries are signed at the broker's next "
                "checkpoint"
            )
        else:
            summary = (
                f"checked: the signed audit log grew from {self.start} to {after.size} "
                "entries, consistently"
            )
        return WitnessOutcome(checked=True, summary=summary)
