"""``matchhub serve``: uvicorn with TLS and required client certificates.

Three things uvicorn does not do on its own, done here in one place:

* The handshake verifies the client certificate against the hub CA **and CRL**. The CRL file is
  re-read when it changes (checked at each handshake), so a revocation refuses new connections
  without a restart; the registry check in :mod:`matchhub.identity.service` refuses the next
  request even on a connection that is already open.
* The verified peer certificate reaches the app in the shape of the ASGI TLS extension
  (``scope["extensions"]["tls"]["client_cert_chain"]``), read by exactly one adapter,
  :mod:`matchhub.identity.peer`.
* Time limits on what a client sends before it has a request in: the TLS handshake
  (``tls_handshake_seconds``; uvicorn passes none, and asyncio's default is a minute) and the
  request header, counted from the handshake or from the previous answer
  (``request_header_seconds``; uvicorn has none, so a connection that sends nothing, or a
  header a byte at a time, stayed open for good). The body's limits are the gate's
  (web/gate.py), which reads it before the request takes an admission slot.
"""

from __future__ import annotations

import asyncio
import ssl
from functools import partial
from typing import Any

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
from matchhub.web.handlers import unreadable_request_response
from matchhub.web.handshakes import HandshakeRefusals


class MutualTLSProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools, the C parser), plus the verified client
    certificate in every request's scope.

    asyncio calls ``connection_made`` after the TLS handshake has completed, so the peer
    certificate is final here; it is bound to this connection's app once.

    While the connection waits for a request (after the handshake, or after an answer), its
    header must be whole within ``header_seconds``, or the connection is closed.
    """

    header_seconds: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_header()
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        pem = (
            x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode("ascii")
            if der
            else None
        )
        self.app = with_client_certificate(self.app, pem)

    def send_400_response(self, msg: str) -> None:
        """Bytes the parser refuses (a 100 kB query string): the one error shape, not
        uvicorn's plain text."""
        self.transport.write(unreadable_request_response())
        self.transport.close()

    def _await_header(self) -> None:
        self._stop_header_timer()
        self._header_timer = self.loop.call_later(self.header_seconds, self._header_overdue)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_overdue(self) -> None:
        self._header_timer = None
        if (self.cycle is not None and not self.cycle.response_complete) or self.pipeline:
            return  # a request is in: its body's time is the gate's, its answer the app's
        if not self.transport.is_closing():
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._stop_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_header()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)


class BoundedServer(uvicorn.Server):
    """uvicorn's server, whose listening sockets drop a TLS handshake not finished within
    ``handshake_seconds`` (uvicorn calls ``loop.create_server`` without one)."""

    def __init__(self, config: uvicorn.Config, handshake_seconds: float) -> None:
        super().__init__(config)
        self.handshake_seconds = handshake_seconds

    async def startup(self, sockets: Any = None) -> None:
        loop = asyncio.get_running_loop()
        loop.create_server = partial(  # type: ignore[method-assign]
            loop.create_server, ssl_handshake_timeout=self.handshake_seconds
        )
        try:
            await super().startup(sockets)
        finally:
            del loop.create_server  # the loop's own method again


class ServerTLS:
    """Builds the server's SSL context and swaps in a fresh one when the CRL file changes;
    each context's refused handshakes are counted and logged (web/handshakes.py)."""

    def __init__(self, settings: Settings, refusals: HandshakeRefusals | None = None) -> None:
        self.paths = settings.paths
        self.refusals = refusals or HandshakeRefusals()
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
        self.refusals.watch(context)
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
    app = create_app(settings, clock)
    tls = ServerTLS(settings, app.state.handshake_refusals)
    protocol = type(
        "MutualTLSProtocol",
        (MutualTLSProtocol,),
        {"header_seconds": settings.request_header_seconds},
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port if port is None else port,
        http=protocol,
        ssl_context_factory=lambda _config, _default: tls.context,
        proxy_headers=False,
        server_header=False,
        log_level="warning",
        access_log=False,
        lifespan="on",
        loop="uvloop",
    )
    return BoundedServer(config, settings.tls_handshake_seconds)


def serve(settings: Settings) -> None:
    build_server(settings).run()
