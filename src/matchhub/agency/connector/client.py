"""An httpx client for an agency: mutual TLS with its certificate, pinned to the hub CA, and
the one place requests are retried.

Verification is never switched off: the server must present a certificate from the hub's CA,
and the agency presents its own. Timeouts are explicit.

Retries (:class:`RetryingTransport`): a request that failed on the network or got a 5xx is
sent again, with exponential backoff, when sending it twice cannot do twice what once would:
``GET``, ``PUT`` (a chunk: the broker takes a repeat once), ``DELETE``, and those ``POST``
requests the broker makes idempotent, which the caller marks with the :data:`IDEMPOTENT`
extension (an upload's open, carrying its ``Idempotency-Key``; a commit, which the broker
answers again when it is repeated with the same rows and digest). Any other ``POST`` is sent
once. A refused TLS handshake (a revoked or foreign certificate) is never retried: another
try cannot fix it.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=120.0, pool=10.0)
RETRY_STATUSES = frozenset({500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
IDEMPOTENT = "matchhub.idempotent"
"""Request extension (``extensions={IDEMPOTENT: True}``): a ``POST`` the broker makes
idempotent, so it may be retried."""


class RetryingTransport(httpx.BaseTransport):
    """Sends a request again on a network error or a 5xx when doing so is safe (above)."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        *,
        attempts: int = 5,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner, self.attempts, self.backoff, self.sleep = inner, attempts, backoff, sleep
        self.retries = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        safe = request.method in IDEMPOTENT_METHODS or bool(request.extensions.get(IDEMPOTENT))
        attempts = self.attempts if safe else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self.inner.handle_request(request)
            except httpx.TransportError as exc:
                if last or _handshake_refused(exc):
                    raise
            else:
                if response.status_code not in RETRY_STATUSES or last:
                    return response
                response.close()
            self.retries += 1
            self.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.inner.close()


def _handshake_refused(exc: BaseException) -> bool:
    """The server refused our certificate or we refused its: a TLS alert or a failed
    verification, not a connection that merely ended (an answer lost on the way)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        if isinstance(seen, ssl.SSLError):
            reason = str(getattr(seen, "reason", "") or "")
            return "ALERT" in reason or "CERTIFICATE" in reason
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass(frozen=True)
class AgencyCredentials:
    certificate: Path
    key: Path
    ca: Path

    @classmethod
    def in_folder(cls, folder: Path, code: str) -> AgencyCredentials:
        """The layout ``matchhub agency add --out`` writes."""
        return cls(folder / f"{code}.pem", folder / f"{code}-key.pem", folder / "ca.pem")

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.certificate, self.key)
        return context


def make_client(
    base_url: str,
    credentials: AgencyCredentials,
    *,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
    attempts: int = 5,
    backoff: float = 0.2,
) -> httpx.Client:
    """The agency's client; ``transport`` (default: mutual TLS over the network) is wrapped in
    the :class:`RetryingTransport`, which makes up to ``attempts`` tries of a request."""
    inner = transport or httpx.HTTPTransport(verify=credentials.ssl_context())
    return httpx.Client(
        base_url=base_url,
        timeout=timeout,
        transport=RetryingTransport(inner, attempts=attempts, backoff=backoff),
        headers={"user-agent": "matchhub-connect"},
    )
