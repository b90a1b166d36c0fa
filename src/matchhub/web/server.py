"""``matchhub serve``: uvicorn with TLS and required client certificates.

Two things uvicorn does not do on its own, done here in one place:

* The handshake verifies the client certificate against the hub CA **and CRL**. The CRL file is
  re-read when it changes (checked at each handshake), so a revocation refuses new connections
  without a restart; the registry check in :mod:`matchhub.identity.service` refuses the next
  request even on a connection that is already open.
* The verified peer certificate reaches the app in the shape of the ASGI TLS extension
  (``scope["extensions"]["tls"]["client_cert_chain"]``), read by exactly one adapter,
  :mod:`matchhub.identity.peer`.
"""

from __future__ import annotations

import asyncio
import ssl

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from matchhub.identity.peer import with_client_certificate
from matchhub.keystore.material import load_key_material
from matchhub.kit import logs
from matchhub.kit.clock import Clock
from matchhub.kit.errors import OperatorError
from matchhub.kit.settings import Settings
from matchhub.web.app import create_app


class MutualTLSProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools, the C parser), plus the verified client
    certificate in every request's scope.

    asyncio calls ``connection_made`` after the TLS handshake has completed, so the peer
    certificate is final here; it is bound to this connection's app once.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        pem = (
            x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode("ascii")
            if der
            else None
        )
        self.app = with_client_certificate(self.app, pem)


class ServerTLS:
    """Builds the server's SSL context and swaps in a fresh one when the CRL file changes."""

    def __init__(self, settings: Settings) -> None:
        self.paths = settings.paths
        for path in (self.paths.ca_cert, self.paths.server_cert, self.paths.server_key):
            if not path.is_file():
                raise OperatorError(f"{path} is missing: run `matchhub init` first")
        self._crl_stamp = self._stamp()
        self.context = self._build()
        self.context.sni_callback = self._on_hello

    def _stamp(self) -> tuple[int, int]:
        try:
            stat = self.paths.crl.stat()
        except FileNotFoundError:
            raise OperatorError(f"{self.paths.crl} is missing: run `matchhub init`") from None
        return (stat.st_mtime_ns, stat.st_size)

    def _build(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.paths.server_cert, self.paths.server_key)
            context.load_verify_locations(cafile=self.paths.ca_cert)
            context.load_verify_locations(cafile=self.paths.crl)
        except (OSError, ssl.SSLError) as exc:
            raise OperatorError(f"cannot load the hub's TLS material: {exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF | ssl.VERIFY_X509_STRICT
        return context

    def _on_hello(self, connection: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        stamp = self._stamp()
        if stamp != self._crl_stamp:
            fresh = self._build()
            fresh.sni_callback = self._on_hello
            self.context, self._crl_stamp = fresh, stamp
        if connection.context is not self.context:
            connection.context = self.context


def build_server(
    settings: Settings, *, port: int | None = None, clock: Clock | None = None
) -> uvicorn.Server:
    """The real server, as ``matchhub serve`` runs it; tests start the same object (with a
    clock of their own to move, kit/clock.py)."""
    logs.configure()
    load_key_material(settings.paths)  # fail before binding, with a clear message
    tls = ServerTLS(settings)
    config = uvicorn.Config(
        create_app(settings, clock),
        host=settings.host,
        port=settings.port if port is None else port,
        http=MutualTLSProtocol,
        ssl_context_factory=lambda _config, _default: tls.context,
        proxy_headers=False,
        server_header=False,
        log_level="warning",
        access_log=False,
        lifespan="on",
        loop="uvloop",
    )
    return uvicorn.Server(config)


def serve(settings: Settings) -> None:
    build_server(settings).run()
