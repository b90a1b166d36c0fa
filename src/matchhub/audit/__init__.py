"""The tamper-evident audit log: an append-only Merkle log with signed checkpoints.

:mod:`matchhub.protocol.merkle` holds the RFC 9162 tree hashing and proofs, and
:mod:`matchhub.protocol.checkpoint` the signed checkpoints (C2SP signed-note) and the witness that
detects a rolled-back or rewritten log.
"""
