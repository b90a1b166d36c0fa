"""The scopes each agency kind holds.

A kind's scopes are fixed in code, not configuration: what a pension authority may do is part of
the contract (docs/design.md, "Parties"), and a route states the one scope it needs.
"""

from __future__ import annotations

from enum import StrEnum

from matchhub.protocol.kinds import PROVIDER_KINDS, AgencyKind


class Scope(StrEnum):
    identity_read = "identity:read"
    catalogue_read = "catalogue:read"
    upload = "upload"
    roster = "roster"
    lookup = "lookup"
    match = "match"
    audit_read = "audit:read"
    audit_witness = "audit:witness"
    metrics_read = "metrics:read"
    cases = "cases"
    feedback = "feedback"


# Every agency may witness the audit log (signed checkpoints and consistency proofs reveal
# sizes and hashes only); reading its entries is for auditors.
_COMMON = frozenset({Scope.identity_read, Scope.catalogue_read, Scope.audit_witness})

KIND_SCOPES: dict[AgencyKind, frozenset[Scope]] = {
    # A provider learns how its own flags fared in the consumers' cases (counts only).
    **{kind: _COMMON | {Scope.upload, Scope.feedback} for kind in PROVIDER_KINDS},
    # The roster travels the upload path as a snapshot kind of its own.
    AgencyKind.welfare: _COMMON
    | {Scope.upload, Scope.roster, Scope.lookup, Scope.match, Scope.cases, Scope.feedback},
    AgencyKind.auditor: _COMMON | {Scope.audit_read},
    # The operator's Prometheus: the broker's counts (which say how often each kind of agency
    # called), and nothing of anyone's data; no other kind reads them (issue 13).
    AgencyKind.monitor: frozenset({Scope.identity_read, Scope.metrics_read}),
}
