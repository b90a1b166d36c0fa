"""
Keyed hashing: from a normalised identifier to the wire token, and the matching key behind it.

    wire token = HMAC-SHA256(matching key, scheme name || 0x00 || normalised identifier)

rendered as 64 lowercase hex characters.

Why a *keyed* hash: a national ID number has at most 10^12 values, so a plain hash of one is
reversed by enumeration in hours. The matching key is made in a key ceremony and held by the
agencies' connectors only; the broker never sees it, so a copy of the broker's database cannot be
dictionary-attacked. (The broker additionally re-keys each token with its own secret, so a leaked
matching key alone reveals nothing either.)

Why the scheme name in the message: domain separation. The same digits under two ID schemes are
two different people, and must never produce the same token. The name is ASCII and cannot
contain NUL, and the identifier is ASCII digits, so `name || 0x00 || id` is an unambiguous
encoding of the pair.

Why keys are versioned: rotation. A token is only meaningful together with the key version that
made it; the version travels with every upload and query (`key_version`), never the key.

`Tokeniser` precomputes the two HMAC-SHA256 states once per (key, scheme) — exactly what a
generic HMAC implementation does on every call — so each token then costs two SHA-256
compressions and a handful of C calls. Tests check it against `hmac.new` from the standard
library, so this is an optimisation of the standard construction, not a new one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import secrets
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import NoReturn

from matchhub.protocol.tokens.normalise import arabic_indic_to_ascii, normalise
from matchhub.protocol.tokens.schemes import Scheme, TokenError, get_scheme

__all__ = [
    "KEY_FILE_FORMAT",
    "MIN_KEY_BYTES",
    "TOKEN_BYTES",
    "TOKEN_LENGTH",
    "InvalidMatchingKey",
    "MatchingKey",
    "Tokeniser",
    "is_token",
]

TOKEN_BYTES = 32  # HMAC-SHA256
TOKEN_LENGTH = 2 * TOKEN_BYTES  # lowercase hex on the wire
"""Length of a wire token: SHA-256 output as lowercase hex."""

MIN_KEY_BYTES = 32
"""Shortest acceptable matching key: 256 bits, the SHA-256 output size (RFC 2104, section 3)."""

KEY_FILE_FORMAT = "matchhub-matching-key/1"
"""The `format` field of a matching-key file; bump it, never reinterpret it."""

_MAX_KEY_FILE_BYTES = 64 * 1024
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_FINGERPRINT_DOMAIN = b"matchhub-matching-key-fingerprint/1\x00"
_HEX_DIGITS = frozenset("0123456789abcdef")
_BLOCK_SIZE = 64  # SHA-256 block size in bytes


class InvalidMatchingKey(TokenError, ValueError):
    """A matching key, its version or its file is malformed. Messages never contain key material."""


class MatchingKey:
    """
    One version of the matching key: a version id and at least 32 secret bytes.

    The secret is reachable only through `get_secret_value()`, named after pydantic's
    `SecretBytes` so that every place that touches it is easy to find. `repr()` and `str()` show
    the version and a fingerprint (a domain-separated SHA-256 of the secret, truncated to 64 bits)
    that lets two parties of a key ceremony confirm they hold the same key without revealing it.

    The version id is 1-64 characters of `[A-Za-z0-9._-]`, starting with a letter or digit: it
    travels in requests and appears in logs and file names.
    """

    __slots__ = ("_secret", "created", "version")

    def __init__(self, version: str, secret: bytes, *, created: datetime | None = None) -> None:
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise InvalidMatchingKey(
                "a key version must be 1-64 characters of [A-Za-z0-9._-], "
                "starting with a letter or digit"
            )
        if not isinstance(secret, bytes):
            raise InvalidMatchingKey("the matching key secret must be bytes")
        if len(secret) < MIN_KEY_BYTES:
            raise InvalidMatchingKey(
                f"a matching key must be at least {MIN_KEY_BYTES} bytes, got {len(secret)}"
            )
        self.version = version
        self.created = created
        self._secret = secret

    @classmethod
    def generate(cls, version: str) -> MatchingKey:
        """A fresh key from the operating system's CSPRNG (`secrets.token_bytes`)."""
        return cls(
            version,
            secrets.token_bytes(MIN_KEY_BYTES),
            created=datetime.now(UTC).replace(microsecond=0),
        )

    def get_secret_value(self) -> bytes:
        """The secret bytes. Only a `Tokeniser` and `to_file` should need them."""
        return self._secret

    @property
    def fingerprint(self) -> str:
        """16 hex characters identifying the key material; safe to show and log."""
        return hashlib.sha256(_FINGERPRINT_DOMAIN + self._secret).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"MatchingKey(version={self.version!r}, fingerprint={self.fingerprint!r})"

    def __reduce__(self) -> NoReturn:
        # Pickling would copy the secret into wherever the pickle goes (a task queue, a cache).
        raise TypeError("a MatchingKey cannot be pickled; pass the key file path instead")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> MatchingKey:
        """
        Read a key file written by `to_file` (format `matchhub-matching-key/1`)::

            {"format": "matchhub-matching-key/1", "version": "2025-06",
             "key": "<standard base64 of the secret>", "created": "<ISO 8601>"}

        `created` is optional on reading. Raises `InvalidMatchingKey` for anything malformed
        (with a message that never quotes the file) and `OSError` if the file cannot be read.
        """
        name = os.fspath(path)
        with open(name, "rb") as file:
            data = file.read(_MAX_KEY_FILE_BYTES + 1)
        if len(data) > _MAX_KEY_FILE_BYTES:
            raise InvalidMatchingKey(f"{name}: too large to be a matching-key file")
        # Parse errors are caught and re-raised *outside* the except blocks: a JSONDecodeError
        # carries the whole document (`.doc`, i.e. the secret), and raising inside `except`
        # would chain it onto our exception as `__context__`, where a traceback logger finds it.
        document: object = None
        with contextlib.suppress(ValueError):
            document = json.loads(data)
        if not isinstance(document, dict) or document.get("format") != KEY_FILE_FORMAT:
            raise InvalidMatchingKey(f"{name}: not a {KEY_FILE_FORMAT} file")
        version, encoded, created = (document.get(k) for k in ("version", "key", "created"))
        if not isinstance(version, str):
            raise InvalidMatchingKey(f"{name}: missing or non-string 'version'")
        secret: bytes | None = None
        if isinstance(encoded, str):
            with contextlib.suppress(binascii.Error, ValueError):
                secret = base64.b64decode(encoded, validate=True)
        if secret is None:
            raise InvalidMatchingKey(f"{name}: 'key' is missing or not valid base64")
        created_at: datetime | None = None
        if created is not None:
            if isinstance(created, str):
                with contextlib.suppress(ValueError):
                    created_at = datetime.fromisoformat(created)
            if created_at is None:
                raise InvalidMatchingKey(f"{name}: 'created' is not an ISO 8601 timestamp")
        return cls(version, secret, created=created_at)

    def to_file(self, path: str | os.PathLike[str]) -> None:
        """
        Write the key to a new file readable by its owner only (mode 0600).

        Refuses (`FileExistsError`) if anything exists at `path`, a symlink included: a key file
        is never overwritten, because losing a key version silently is worse than an error. The
        file is created with mode 0600 by `os.open` itself, so it is never readable by others,
        not even for a moment. A failed write removes the partial file.
        """
        document = {
            "format": KEY_FILE_FORMAT,
            "version": self.version,
            "key": base64.b64encode(self._secret).decode("ascii"),
            "created": (self.created or datetime.now(UTC).replace(microsecond=0)).isoformat(),
        }
        data = (json.dumps(document, indent=2) + "\n").encode("ascii")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                if sys.platform != "win32":
                    os.fchmod(file.fileno(), 0o600)  # the umask can only remove bits
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise


class Tokeniser:
    """
    Turns raw identifiers of one scheme into wire tokens under one matching-key version.

    Build one per (key, scheme) and reuse it: construction does the HMAC key schedule and absorbs
    the domain prefix `scheme || 0x00`, so `token()` only hashes the identifier's digits.
    Thread-safe: the precomputed states are copied, never updated in place.
    """

    __slots__ = ("_inner", "_length", "_outer", "_placeholders", "key_version", "scheme")

    def __init__(self, key: MatchingKey, scheme: Scheme | str) -> None:
        self.scheme = get_scheme(scheme) if isinstance(scheme, str) else scheme
        self.key_version = key.version
        # HMAC (RFC 2104): H((K ^ opad) || H((K ^ ipad) || message)), K padded to the block size.
        secret = key.get_secret_value()
        if len(secret) > _BLOCK_SIZE:
            secret = hashlib.sha256(secret).digest()
        padded = secret.ljust(_BLOCK_SIZE, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._inner.update(self.scheme.name.encode("ascii") + b"\x00")
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
        self._length = self.scheme.length
        # Placeholders in both the str and bytes spellings, for the two fast paths.
        placeholders = [str(d) * self._length for d in range(10)]
        self._placeholders: frozenset[str | bytes] = frozenset(
            placeholders + [p.encode() for p in placeholders]
        )

    def __repr__(self) -> str:
        return f"Tokeniser(scheme={self.scheme.name!r}, key_version={self.key_version!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Tokeniser holds key material and cannot be pickled")

    def token(self, raw: str) -> str:
        """The wire token of `raw`: 64 lowercase hex characters. Raises like `normalise`."""
        # Fast path: a string that is already a valid canonical identifier is, by definition,
        # what `normalise` returns for it. `token_bytes` repeats these lines on purpose: a
        # shared helper costs a Python call per token, several percent of the total.
        if (
            isinstance(raw, str)
            and raw.isascii()
            and raw.isdigit()
            and len(raw) == self._length
            and raw not in self._placeholders
        ):
            data = raw.encode()
        else:
            data = self._message(raw)
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def token_bytes(self, raw: str) -> bytes:
        """The wire token of `raw` as 32 raw bytes. Raises like `normalise`."""
        if (
            isinstance(raw, str)
            and raw.isascii()
            and raw.isdigit()
            and len(raw) == self._length
            and raw not in self._placeholders
        ):
            data = raw.encode()
        else:
            data = self._message(raw)
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def _message(self, raw: str) -> bytes:
        """The normalised identifier as bytes, for anything the ASCII fast path did not take."""
        if not isinstance(raw, str):
            raise TypeError(f"an identifier must be str, not {type(raw).__name__}")
        if len(raw) == self._length and not raw.isascii():
            data = arabic_indic_to_ascii(raw)
            if data is not None and len(data) == self._length and data not in self._placeholders:
                return data
        # The reference path: either returns what the fast paths would have, or raises.
        return normalise(raw, self.scheme).encode()

    def tokens(self, raws: Iterable[str]) -> Iterator[str]:
        """
        `token()` over an iterable, lazily. Stops at the first invalid identifier by raising
        `InvalidIdentifier`; a connector that wants to skip and count bad rows should call
        `token()` in its own loop instead.
        """
        token = self.token
        for raw in raws:
            yield token(raw)


def is_token(value: object) -> bool:
    """Whether `value` is a well-formed wire token: a str of exactly 64 of `[0-9a-f]`."""
    return isinstance(value, str) and len(value) == TOKEN_LENGTH and _HEX_DIGITS.issuperset(value)
