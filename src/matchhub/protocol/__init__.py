"""The protocol: what the broker and the agencies share bit for bit.

Identifier normalisation and keyed hashing (:mod:`~matchhub.protocol.tokens`), the chunk wire
formats (:mod:`~matchhub.protocol.wire`), the agency kinds and the published flag catalogue,
canonical JSON, and the Merkle-tree and signed-checkpoint verification an auditor or a
connector runs against the broker's audit log. It imports nothing of the broker, and nothing
beyond the standard library, ``cryptography`` and ``numpy``: an agency installs it without the
broker's server dependencies.
"""
