"""TLS handshakes the server refused: counted by reason for ``/metrics`` and logged with the
presented certificate's fingerprint, nothing else of it.

A refused handshake never reaches the HTTP layer (asyncio hands a connection to the protocol
only once its handshake has completed) and the event loop reports it nowhere, so the server
watches its own TLS messages instead: OpenSSL's message callback, which sees the client's
Certificate message (whose first certificate's DER is hashed into the fingerprint) and the
fatal alert the server sends when it refuses. The callback is set on the C context directly
(``_ssl._SSLContext._msg_callback``, what :class:`ssl.SSLContext`'s private hook wraps with
enum conversions), and returns at once for records that are neither a handshake message nor an
alert, so what it costs an answered request is a few calls returning at the first comparison.
"""

from __future__ import annotations

import _ssl
import hashlib
import threading
import weakref
from collections import Counter
from typing import Any

import structlog

log = structlog.get_logger("matchhub.tls")

_ALERT = 21
_HANDSHAKE = 22
_CERTIFICATE = 11
_FATAL = 2

REASONS = ("no_certificate", "unknown_ca", "revoked", "expired", "bad_certificate", "other")
_BY_ALERT = {
    116: "no_certificate",  # certificate_required (TLS 1.3)
    48: "unknown_ca",
    44: "revoked",
    45: "expired",
    42: "bad_certificate",
    43: "bad_certificate",  # unsupported_certificate (e.g. not for client authentication)
    46: "bad_certificate",  # certificate_unknown
}


def _first_certificate(message: bytes) -> bytes | None:
    """The first certificate's DER in a TLS Certificate handshake message (1.2 or 1.3), or
    ``None`` when it carries none. Only the framing is read; the certificate is hashed, never
    parsed."""
    try:
        body = message[4:]
        # TLS 1.3 puts a request context (a length byte and its bytes) first; 1.2 does not.
        # The list's 3-byte length then equals what is left of the message.
        for start in (0, 1 + body[0]):
            total = int.from_bytes(body[start : start + 3], "big")
            if total == len(body) - start - 3:
                if total == 0:
                    return None
                size = int.from_bytes(body[start + 3 : start + 6], "big")
                der = body[start + 6 : start + 6 + size]
                return der if len(der) == size else None
    except IndexError:
        return None
    return None


class HandshakeRefusals:
    """The counts by reason, kept by the server's TLS layer and read by the metrics."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter({reason: 0 for reason in REASONS})
        self._lock = threading.Lock()
        self._presented: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def watch(self, context: Any) -> None:
        """Watch the handshakes of ``context`` (an :class:`ssl.SSLContext`)."""
        _ssl._SSLContext._msg_callback.__set__(context, self._on_message)  # type: ignore[attr-defined]

    def _on_message(
        self, conn: Any, direction: str, _version: int, kind: int, _msg: int, data: bytes
    ) -> None:
        if kind == _HANDSHAKE:
            if direction == "read" and data[:1] == b"\x0b":
                der = _first_certificate(data)
                if der is not None:
                    self._presented[conn] = hashlib.sha256(der).hexdigest()
        elif kind == _ALERT and direction == "write" and data[:1] == bytes([_FATAL]):
            presented = self._presented.get(conn)
            alert = data[1] if len(data) > 1 else -1
            reason = _BY_ALERT.get(alert, "other")
            if reason == "other" and alert == 40 and presented is None:
                reason = "no_certificate"  # handshake_failure without one (TLS 1.2)
            self.refused(reason, presented)

    def refused(self, reason: str, fingerprint: str | None) -> None:
        with self._lock:
            self.counts[reason] += 1
        log.warning("tls handshake refused", reason=reason, certificate=fingerprint)
