"""Re-keying wire tokens on arrival, and sealing roster tokens.

    stored token = first 16 bytes of HMAC-SHA256(K_rekey, wire token as 32 raw bytes)
    sealed token = AES-SIV(K_seal, wire token)                  (roster rows only)

K_rekey and K_seal are derived from the broker key with HKDF-SHA256 under distinct labels, so
one secret file serves both purposes without one key doing two jobs.

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

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

STORED_TOKEN_BYTES = 16
SEALED_TOKEN_BYTES = 48  # 16-byte synthetic IV + 32-byte ciphertext
_BLOCK = 64
_SEAL_CONTEXT = [b"matchhub roster token"]


def derive(broker_key: bytes, label: str, length: int = 32) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=None, info=label.encode("ascii")
    ).derive(broker_key)


class Rekeyer:
    """HMAC-SHA256 under the broker key with the two pad states computed once."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, broker_key: bytes) -> None:
        if len(broker_key) < 32:
            raise ValueError("the broker key must be at least 32 bytes")
        key = derive(broker_key, "matchhub rekey v1").ljust(_BLOCK, b"\0")
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


class Sealer:
    """Why roster tokens are also sealed: a match job answers with the consumer's own (wire)
    tokens, which the one-way stored form cannot give back. The sealed form is a deterministic
    authenticated encryption (AES-SIV, RFC 5297) under a key only the broker holds, so the wire
    token is never written to disk in clear, and is recovered only to answer the consumer that
    sent it. Provider rows are never sealed: nothing is ever answered from them but flags."""

    __slots__ = ("_siv",)

    def __init__(self, broker_key: bytes) -> None:
        self._siv = AESSIV(derive(broker_key, "matchhub roster seal v1", 64))

    def __repr__(self) -> str:
        return "Sealer(<broker key>)"

    def seal(self, wire: bytes) -> bytes:
        return self._siv.encrypt(wire, _SEAL_CONTEXT)

    def unseal(self, sealed: bytes) -> bytes:
        return self._siv.decrypt(sealed, _SEAL_CONTEXT)
