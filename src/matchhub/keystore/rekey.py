"""Re-keying wire tokens on arrival.

    stored token = first 16 bytes of HMAC-SHA256(broker key, wire token as 32 raw bytes)

The broker stores only this. Without the broker key, a leaked matching key cannot be turned into
the stored form; without the matching key, a leaked database cannot be enumerated.

Why 16 bytes (128 bits): the stored token only needs to be collision-free among the tokens the
broker holds. For n tokens the chance of any collision is at most n²/2^129; at n = 100 million
(about 2.7 times Iraq's population, over every provider and roster) that is
10^16 / 6.8·10^38 ≈ 1.5·10^-23. Half the width of a full digest halves the size of the row
table and its index, which is what bounds ingest and match speed. Truncating HMAC output is
standard (RFC 2104, section 5).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

STORED_TOKEN_BYTES = 16
_BLOCK = 64


class Rekeyer:
    """HMAC-SHA256 under the broker key with the two pad states computed once."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, broker_key: bytes) -> None:
        if len(broker_key) < 32:
            raise ValueError("the broker key must be at least 32 bytes")
        key = broker_key if len(broker_key) <= _BLOCK else hashlib.sha256(broker_key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __repr__(self) -> str:
        return "Rekeyer(<broker key>)"

    def rekey(self, wire: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(wire)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:STORED_TOKEN_BYTES]

    def function(self) -> Callable[[bytes], bytes]:
        return self.rekey
