"""The one adapter that says which client certificate a request came with.

Two sources, chosen by ``Settings.client_cert_source``:

``tls``
    The broker terminates TLS itself. uvicorn does not put the peer certificate in the ASGI
    scope, so :mod:`matchhub.web.server` adds it with :func:`with_client_certificate` in the
    shape of the ASGI TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``, a
    list of PEM strings), after the handshake has verified it against the hub CA and CRL. The
    in-process API tests put a certificate there the same way.
``proxy``
    An mTLS-terminating proxy (nginx ``ssl_verify_client on``) forwards the verified client
    certificate in ``X-Client-Cert`` (nginx ``$ssl_client_escaped_cert``). The header is believed
    only when the proxy's own connection to the broker presents one of the configured proxy
    certificates, never because of the source address. A connection that presents another
    certificate and no forwarded one is a direct client of the broker (the operator's
    Prometheus scraping each process's ``/metrics``), identified by its own certificate, which
    the broker's TLS layer verified against the hub CA and CRL as in ``tls``; one that presents
    another certificate *and* forwards one is refused (``proxy_not_trusted``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from starlette.requests import HTTPConnection

from matchhub.keystore.pki import fingerprint
from matchhub.kit.errors import Unauthenticated
from matchhub.kit.settings import Settings

PROXY_CERT_HEADER = "x-client-cert"
PROXY_VERIFY_HEADER = "x-client-verify"

ASGIApp = Callable[..., Any]


def with_client_certificate(app: ASGIApp, peer_pem: str | None) -> ASGIApp:
    """``app``, with ``peer_pem`` (a certificate the TLS layer has verified, or ``None``) in
    every request's scope where :func:`tls_extension_certificate` reads it."""
    tls = {
        "server_cert": None,
        "client_cert_chain": [peer_pem] if peer_pem else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope.setdefault("extensions", {})["tls"] = tls
        await app(scope, receive, send)

    return wrapped


def tls_extension_certificate(scope: dict[str, Any] | Any) -> x509.Certificate | None:
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return None
    return _parse_pem(chain[0])


@lru_cache(maxsize=4096)
def _parse_pem(pem: str) -> x509.Certificate:
    """Parsed once per distinct certificate, not once per request on a keep-alive connection."""
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


def client_certificate(request: HTTPConnection, settings: Settings) -> x509.Certificate | None:
    """The client's certificate: the one the TLS layer verified, or behind the trusted proxy
    the one it forwarded. ``None`` when there is none; raises when the connection claims to be
    the proxy and is not, or forwards something that is not a certificate."""
    direct = tls_extension_certificate(request.scope)
    if settings.client_cert_source == "tls":
        return direct
    if direct is None or not any(
        hmac.compare_digest(fingerprint(direct), trusted)
        for trusted in settings.trusted_proxy_fingerprints
    ):
        forwarding = PROXY_CERT_HEADER in request.headers or PROXY_VERIFY_HEADER in request.headers
        if direct is None or forwarding:
            raise Unauthenticated(
                "this connection is not from the trusted mTLS proxy", code="proxy_not_trusted"
            )
        return direct  # a direct client, verified by the broker's own TLS layer
    if request.headers.get(PROXY_VERIFY_HEADER) != "SUCCESS":
        return None
    forwarded = request.headers.get(PROXY_CERT_HEADER)
    if not forwarded:
        return None
    try:
        return _parse_pem(unquote(forwarded))
    except (ValueError, UnicodeEncodeError) as exc:
        raise Unauthenticated(
            "the forwarded client certificate is not PEM", code="certificate_invalid"
        ) from exc


def claimed_fingerprint(scope: dict[str, Any] | Any, settings: Settings) -> str | None:
    """For the record of a refused request: the fingerprint of the certificate the client
    presented (behind the trusted proxy, the forwarded one, never the proxy's own). A
    connection that falsely claims to be the proxy is named by its own certificate. Never
    raises, and says nothing of the certificate beyond its fingerprint."""
    try:
        certificate = client_certificate(HTTPConnection(scope), settings)
    except Unauthenticated:
        try:
            certificate = tls_extension_certificate(scope)
        except ValueError:
            return None
    except ValueError:
        return None
    return fingerprint(certificate) if certificate is not None else None
