"""Re-keying wire tokens on arrival, and sealing roster tokens.

    stored token = AES-CMAC(K_rekey, wire token as 32 raw bytes)         (RFC 4493, 16 bytes)
    sealed token = AES-SIV(K_seal, wire token)                  (roster rows only)

K_rekey and K_seal are derived from the broker key with HKDF-SHA256 under distinct labels, so
one secret file serves both purposes without one key doing two jobs.

The broker stores only this. Without the broker key, a leaked matching key cannot be turned into
the stored form; without the matching key, a leaked database cannot be enumerated.

Why 16 bytes (128 bits): the stored token only needs to be collision-free among the tokens the
broker holds. For n tokens the chance of any collision is at most n²/2^129; at n = 100 million
(about 2.7 times Iraq's population, over every provider and roster) that is
10^16 / 6.8·10^38 ≈ 1.5·10^-23. Half the width of a SHA-256 digest halves the size of the row
table and its index, which is what bounds ingest and match speed; AES-CMAC gives exactly 128
bits.
"""

from __future__ import annotations

import hmac
import threading

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

STORED_TOKEN_BYTES = 16
SEALED_TOKEN_BYTES = 48  # 16-byte synthetic IV + 32-byte ciphertext
_SEAL_CONTEXT = [b"matchhub roster token"]
# RFC 5297 section 2.6: the synthetic IV becomes the counter with bits 63 and 31 cleared.
_CTR_MASK = np.frombuffer(bytes.fromhex("ffffffffffffffff7fffffff7fffffff"), dtype=np.uint8)


def derive(broker_key: bytes, label: str, length: int = 32) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=None, info=label.encode("ascii")
    ).derive(broker_key)


class Rekeyer:
    """AES-CMAC (RFC 4493) under K_rekey, computed for a whole chunk of tokens at once.

    Why CMAC, batched: re-keying sits on the ingest path of tens of millions of rows, where a
    library call per token (an HMAC, say) would cost more than the rest of the ingest (see
    docs/benchmarks.md). A wire token is exactly two AES blocks, so
    its CMAC is ``E(E(M1) ⊕ M2 ⊕ K1)`` with the RFC's subkey K1: two AES-ECB passes over all the
    chunk's blocks (one library call each) and an XOR in numpy. It is the standard construction,
    evaluated in bulk, and ``tests/unit/test_rekey.py`` checks it bit for bit against
    ``cryptography``'s own CMAC. CMAC is a PRF with a 128-bit output (the width argued above).
    """

    __slots__ = ("_cmac",)

    def __init__(self, broker_key: bytes) -> None:
        if len(broker_key) < 32:
            raise ValueError("the broker key must be at least 32 bytes")
        self._cmac = _TwoBlockCmac(derive(broker_key, "matchhub rekey v2"))

    def __repr__(self) -> str:
        return "Rekeyer(<broker key>)"

    def rekey_many(self, wire_tokens: bytes) -> bytes:
        """The stored tokens (16 bytes each) of wire tokens concatenated (32 bytes each)."""
        if len(wire_tokens) % 32:
            raise ValueError("wire tokens are 32 bytes each")
        if not wire_tokens:
            return b""
        blocks = np.frombuffer(wire_tokens, dtype=np.uint8).reshape(-1, 2, 16)
        return self._cmac.many(blocks).tobytes()

    def rekey(self, wire: bytes) -> bytes:
        return self.rekey_many(wire)


class _Ecb:
    """AES-ECB passes over whole blocks under one key, for the constructions below.

    Each thread keeps one encryptor context and feeds it every pass. ECB encrypts each block on
    its own, so a pass through a kept context gives exactly what a new context's would; making
    a context each pass (the key schedule and the library's objects) was more than half of
    re-keying a lookup's ten tokens (17 µs against 7 µs). Contexts are never shared between
    threads; a pass of a partial block, which a kept context would carry into the next, is
    refused."""

    __slots__ = ("_cipher", "_local")

    def __init__(self, key: bytes) -> None:
        self._cipher = Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305 (see the callers)
        self._local = threading.local()

    def __call__(self, data: bytes) -> bytes:
        if len(data) % 16:
            raise ValueError("AES-ECB passes whole 16-byte blocks")
        encryptor = getattr(self._local, "encryptor", None)
        if encryptor is None:
            encryptor = self._local.encryptor = self._cipher.encryptor()
        return encryptor.update(data)


class _TwoBlockCmac:
    """AES-CMAC (RFC 4493) of many two-block messages at once: ``E(E(M1) ⊕ M2 ⊕ K1)`` with the
    RFC's subkey K1, as two AES-ECB passes over all the messages' blocks and an XOR in numpy.
    ECB here is CMAC's own block-cipher calls, made for many messages at once; never a mode
    of encryption of data (tests/unit/test_rekey.py checks it against the library's CMAC)."""

    __slots__ = ("_ecb", "_k1")

    def __init__(self, key: bytes) -> None:
        self._ecb = _Ecb(key)
        self._k1 = np.frombuffer(_double(self._ecb(bytes(16))), dtype=np.uint8)

    def many(self, blocks: np.ndarray) -> np.ndarray:
        """The tags, (n, 16) uint8, of ``blocks``, (n, 2, 16) uint8."""
        first = np.frombuffer(self._ecb(blocks[:, 0, :].tobytes()), dtype=np.uint8)
        mixed = first.reshape(-1, 16) ^ blocks[:, 1, :] ^ self._k1
        return np.frombuffer(self._ecb(mixed.tobytes()), dtype=np.uint8).reshape(-1, 16)


def _cmac(key: bytes, message: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(message)
    return mac.finalize()


def _double(block: bytes) -> bytes:
    """RFC 4493 subkey generation: the block shifted left by one bit, XOR 0x87 on carry."""
    value = int.from_bytes(block, "big") << 1
    if value >> 128:
        value = (value & ((1 << 128) - 1)) ^ 0x87
    return value.to_bytes(16, "big")


class Sealer:
    """Why roster tokens are also sealed: a match job answers with the consumer's own (wire)
    tokens, which the one-way stored form cannot give back. The sealed form is a deterministic
    authenticated encryption (AES-SIV, RFC 5297) under a key only the broker holds, so the wire
    token is never written to disk in clear, and is recovered only to answer the consumer that
    sent it. Provider rows are never sealed: nothing is ever answered from them but flags.

    Why :meth:`seal_many` evaluates AES-SIV itself: a roster chunk is tens of thousands of
    tokens, and a library call each cost 0.1 to 0.55 s for 50,000 on a loaded machine,
    against 0.04 s batched (docs/benchmarks.md). For a 32-byte
    plaintext P and the one associated string A, RFC 5297 is

        V = S2V(K1, A, P) = CMAC(K1, P xorend D),  D = dbl(CMAC(K1, 0¹²⁸)) ⊕ CMAC(K1, A)
        C = P ⊕ (E(K2, Q) ‖ E(K2, Q + 1)),  Q = V with bits 31 and 63 cleared

    D depends on the key alone (computed once with the library's CMAC); the CMAC of the two
    blocks and the two counter blocks are AES-ECB passes over the whole chunk, as in
    :class:`Rekeyer`. Clearing bit 31 means Q + 1 never carries out of the last 32 bits.
    ``tests/unit/test_rekey.py`` checks it bit for bit against the library's AES-SIV, which
    :meth:`seal` and :meth:`unseal` still call."""

    __slots__ = ("_ctr", "_d", "_s2v", "_siv")

    def __init__(self, broker_key: bytes) -> None:
        key = derive(broker_key, "matchhub roster seal v1", 64)
        self._siv = AESSIV(key)
        mac_key, ctr_key = key[:32], key[32:]  # RFC 5297 section 2.6: K1 for S2V, K2 for CTR
        self._s2v = _TwoBlockCmac(mac_key)
        self._ctr = _Ecb(ctr_key)  # CTR's blocks
        zero = np.frombuffer(_double(_cmac(mac_key, bytes(16))), dtype=np.uint8)
        self._d = zero ^ np.frombuffer(_cmac(mac_key, _SEAL_CONTEXT[0]), dtype=np.uint8)

    def __repr__(self) -> str:
        return "Sealer(<broker key>)"

    def seal(self, wire: bytes) -> bytes:
        return self._siv.encrypt(wire, _SEAL_CONTEXT)

    def seal_many(self, wire_tokens: bytes) -> bytes:
        """The sealed tokens (48 bytes each: V, then C) of wire tokens concatenated (32 bytes
        each); each exactly :meth:`seal` of its token."""
        if len(wire_tokens) % 32:
            raise ValueError("wire tokens are 32 bytes each")
        if not wire_tokens:
            return b""
        plain = np.frombuffer(wire_tokens, dtype=np.uint8).reshape(-1, 32)
        v = self._synthetic_iv(plain)
        sealed = np.empty((len(plain), SEALED_TOKEN_BYTES), dtype=np.uint8)
        sealed[:, :16] = v
        sealed[:, 16:] = plain ^ self._keystream(v)
        return sealed.tobytes()

    def unseal_many(self, sealed_tokens: bytes) -> bytes:
        """The wire tokens (32 bytes each) of sealed tokens concatenated (48 bytes each), each
        exactly :meth:`unseal` of its sealed token; ``InvalidTag`` if any was not sealed by
        this key (the synthetic IVs are compared all at once, in constant time)."""
        if len(sealed_tokens) % SEALED_TOKEN_BYTES:
            raise ValueError("sealed tokens are 48 bytes each")
        if not sealed_tokens:
            return b""
        sealed = np.frombuffer(sealed_tokens, dtype=np.uint8).reshape(-1, SEALED_TOKEN_BYTES)
        v = np.ascontiguousarray(sealed[:, :16])
        plain: np.ndarray = sealed[:, 16:] ^ self._keystream(v)
        if not hmac.compare_digest(self._synthetic_iv(plain).tobytes(), v.tobytes()):
            raise InvalidTag
        return plain.tobytes()

    def _synthetic_iv(self, plain: np.ndarray) -> np.ndarray:
        """V = S2V(K1, A, P) of each row of ``plain``, (n, 32) uint8."""
        xorend = plain.reshape(-1, 2, 16).copy()
        xorend[:, 1, :] ^= self._d
        return self._s2v.many(xorend)

    def _keystream(self, v: np.ndarray) -> np.ndarray:
        """E(K2, Q) ‖ E(K2, Q + 1) for each synthetic IV, (n, 32) uint8."""
        counters = np.empty((len(v), 2, 16), dtype=np.uint8)
        counters[:, 0, :] = v & _CTR_MASK
        counters[:, 1, :] = counters[:, 0, :]
        low = counters[:, 1, 12:].copy().view(">u4")
        low += 1  # in place, so it stays big-endian
        counters[:, 1, 12:] = low.view(np.uint8)
        return np.frombuffer(self._ctr(counters.tobytes()), dtype=np.uint8).reshape(-1, 32)

    def unseal(self, sealed: bytes) -> bytes:
        return self._siv.decrypt(sealed, _SEAL_CONTEXT)
