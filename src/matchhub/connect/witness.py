"""
The audit witness hook: where a connector checks the broker's audit log on each push.

DESIGN.md asks for every push to be appended to a hash-chained, signed audit log. A connector
that fetches the broker's signed checkpoint before it pushes and again after its commit, checks
both signatures against the hub's audit public key and checks that the second log extends the
first (an RFC 9162 consistency proof) and contains its own commit (an inclusion proof) is a
*witness*: a broker that rewrote or forked its history would be caught by the agencies
themselves, not only by an auditor reading an export later.

**Not yet possible**: the broker has no audit API yet (``GET /v1/audit/checkpoint``,
``GET /v1/audit/proofs/...`` are to come). This module is the hook point. The push calls
`Witness.before_push` once the broker is reached and before the upload is opened, and
`Witness.after_commit` after the commit; the report shows the outcome. The only implementation
today, `AuditApiPending`, checks nothing and says so in every report, so nobody mistakes a push
for a witnessed one. A real witness replaces it in ``matchhub.connect.cli.make_witness``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

__all__ = ["AuditApiPending", "Witness", "WitnessOutcome"]


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
    """The placeholder witness: the broker has no audit API yet, so nothing is checked."""

    def before_push(self, client: httpx.Client) -> None:
        return None

    def after_commit(self, client: httpx.Client, upload: Mapping[str, Any]) -> WitnessOutcome:
        return WitnessOutcome(
            checked=False,
            summary="not checked: the broker has no audit checkpoint API yet",
        )
