"""
Identifier normalisation and keyed hashing, shared bit-for-bit by the broker, the agencies'
connectors and the tests. Standard library only, so a connector can vendor it as is.

connectors/TOKEN-SPEC.md is the normative description; connectors/token-vectors.json holds the
conformance vectors generated from this package.
"""

from matchhub.protocol.tokens.hashing import (
    KEY_FILE_FORMAT,
    MIN_KEY_BYTES,
    TOKEN_BYTES,
    TOKEN_LENGTH,
    InvalidMatchingKey,
    MatchingKey,
    Tokeniser,
    is_token,
)
from matchhub.protocol.tokens.normalise import MAX_RAW_LENGTH, looks_like_raw_identifier, normalise
from matchhub.protocol.tokens.schemes import (
    SCHEMES,
    InvalidIdentifier,
    Reason,
    Scheme,
    TokenError,
    UnknownScheme,
    get_scheme,
)

__all__ = [
    "KEY_FILE_FORMAT",
    "MAX_RAW_LENGTH",
    "MIN_KEY_BYTES",
    "SCHEMES",
    "TOKEN_BYTES",
    "TOKEN_LENGTH",
    "InvalidIdentifier",
    "InvalidMatchingKey",
    "MatchingKey",
    "Reason",
    "Scheme",
    "TokenError",
    "Tokeniser",
    "UnknownScheme",
    "get_scheme",
    "is_token",
    "looks_like_raw_identifier",
    "normalise",
]
