"""``create_app(settings)``: the HTTP API. Engines and keys are built in the lifespan, never at
import, so building the app (for the OpenAPI document, say) touches nothing on disk."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial

import structlog
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from matchhub import __version__
from matchhub.audit import service as audit
from matchhub.audit.endpoints import router as audit_router
from matchhub.cases.endpoints import router as cases_router
from matchhub.catalogue.endpoints import router as catalogue_router
from matchhub.identity.endpoints import router as identity_router
from matchhub.jobs.endpoints import router as jobs_router
from matchhub.keystore.material import load_key_material
from matchhub.keystore.rekey import Rekeyer, Sealer
from matchhub.kit import heap
from matchhub.kit.clock import Clock
from matchhub.kit.db import make_engine, make_sessionmaker
from matchhub.kit.epoch import EpochWatch
from matchhub.kit.ratelimit import RateLimiter
from matchhub.kit.responses import ErrorBody
from matchhub.kit.settings import Settings
from matchhub.lookups.endpoints import router as lookups_router
from matchhub.lookups.keeper import ViewKeeper
from matchhub.lookups.repository import ViewRepository
from matchhub.uploads.digests import RunningDigests
from matchhub.uploads.endpoints import router as uploads_router
from matchhub.uploads.segments import SegmentStore
from matchhub.uploads.service import UploadContext
from matchhub.web import handlers
from matchhub.web.admission import AdmissionMiddleware
from matchhub.web.background import Background, NoBackground
from matchhub.web.fleet import Fleet
from matchhub.web.gate import IDENTIFY_CONNECTIONS, GateMiddleware
from matchhub.web.handshakes import HandshakeRefusals
from matchhub.web.health import router as health_router
from matchhub.web.metrics import Metrics, MetricsMiddleware
from matchhub.web.metrics import router as metrics_router
from matchhub.web.recorder import AuditMiddleware
from matchhub.web.uow import RequestUnitOfWork
from matchhub.web.views import Views
from matchhub.web.writer import AuditWriter

log = structlog.get_logger("matchhub")

BACKGROUND_CONNECTIONS = 8
BACKGROUND_READERS = 2

DESCRIPTION = """\
matchhub brokers inter-agency data matching for social protection. Partner agencies push
keyed-hash tokens with flag codes; the welfare ministry asks, for beneficiaries on its own roster,
which flags the partners assert. Every caller is identified by its mutual-TLS client certificate.
Errors are `{"error": {"code": "...", "message": "..."}}` with a stable code.
"""


def _rate_limiters(app: FastAPI, settings: Settings) -> Callable[[int], None]:
    """The per-agency rate limits (lookups, witness requests); returns what sets this
    process's share of them as the serving processes come and go (kit/ratelimit.py)."""
    limiters = (
        RateLimiter(settings.lookup_rate_per_second, settings.lookup_burst),
        RateLimiter(settings.witness_rate_per_second, settings.witness_burst),
    )
    app.state.lookup_limiter, app.state.witness_limiter = limiters

    def share(processes: int) -> None:
        for limiter in limiters:
            limiter.set_share(processes)

    return share


def _start(app: FastAPI, settings: Settings) -> Callable[[], None]:
    """Engines, keys, the view keeper, the audit writer, the heartbeat and (if this process
    does it) the background work; returns what stops them."""
    # One connection per admitted request, and some for the job runner, the audit writer
    # and the janitor (web/admission.py).
    engine = make_engine(
        settings.sqlalchemy_url,
        pool_size=settings.request_concurrency,
        max_overflow=BACKGROUND_CONNECTIONS,
    )
    # Read-only routes' sessions: autocommit connections the database keeps read-only
    # (kit/db.py), as many as requests may be admitted, two for the lookup view's loads and
    # the metrics gauges, and a few for the gate's identifying callers (web/gate.py).
    reader = make_engine(
        settings.sqlalchemy_url,
        read_only=True,
        pool_size=settings.request_concurrency,
        max_overflow=BACKGROUND_READERS + IDENTIFY_CONNECTIONS,
    )
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.read_sessionmaker = make_sessionmaker(reader)
    app.state.unit_of_work = RequestUnitOfWork(app.state.sessionmaker, app.state.read_sessionmaker)
    keys = load_key_material(settings.paths)
    app.state.keys = keys
    digests = RunningDigests()
    app.state.uploads = UploadContext(
        rekeyer=Rekeyer(keys.broker_key.value),
        sealer=Sealer(keys.broker_key.value),
        digests=digests,
        ttl=timedelta(seconds=settings.upload_ttl_seconds),
        max_open=settings.max_open_uploads_per_agency,
    )
    app.state.audit_keys = audit.keys_from(keys, settings.hub_name, settings.audit_checkpoint_every)
    epoch = EpochWatch()
    # The host's snapshot segments, named by the database's history (uploads/segments.py).
    segments = SegmentStore(settings.paths.segments, lambda: epoch.known)
    app.state.segments = segments
    views = Views(
        partial(
            ViewKeeper,
            reader,
            segments,
            max_rows=settings.lookup_view_max_rows,
            poll_seconds=settings.lookup_view_poll_seconds,
        )
    )
    app.state.lookup_views = views
    writer = AuditWriter(
        app.state.sessionmaker,
        app.state.audit_keys,
        generation=lambda session: ViewRepository(session).generation(hold=True),
        on_stale=views.outdated,
    )
    app.state.audit_writer = writer
    fleet = Fleet(
        app.state.sessionmaker,
        "serve",
        interval=settings.heartbeat_seconds,
        on_serving=_rate_limiters(app, settings),
    )
    app.state.fleet = fleet
    background: Background | None = None
    if settings.serve_background:
        background = Background(
            app.state.sessionmaker, settings, app.state.audit_keys, segments, app.state.clock
        )
    app.state.job_runner = background or NoBackground()
    # After a restore or a failover, before the first query of the new history runs:
    # nothing kept by snapshot id is carried over (kit/epoch.py).
    epoch.listeners.append(lambda _old, _new: digests.clear())
    epoch.listeners.append(lambda _old, _new: segments.restored())
    epoch.listeners.append(lambda _old, _new: views.renew())
    if background is not None:
        epoch.listeners.append(lambda _old, _new: background.restored())
    epoch.attach(engine)
    epoch.attach(reader)
    app.state.epoch = epoch
    fleet.start()
    writer.start()
    views.start()
    app.state.metrics = Metrics(
        lambda: app.state.read_sessionmaker,
        fleet,
        epoch,
        views,
        segments=segments,
        refusals=app.state.handshake_refusals,
    )
    if background is not None:
        background.start()

    def stop() -> None:
        if background is not None:
            background.stop()
        views.stop()
        writer.stop()
        fleet.stop()
        reader.dispose()
        engine.dispose()

    return stop


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    """The app. ``clock`` is the one clock its rules and its background work read (a test's,
    to move time forward); the real time if none."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = _start(app, settings)
        try:
            # What the start made lives as long as the app: out of the collector's way.
            with heap.settled():
                yield
        finally:
            await run_in_threadpool(stop)

    app = FastAPI(
        title="matchhub",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # No interactive docs: they would load scripts from the internet and sit outside the
        # scope model. The document is committed in openapi/openapi.json.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI's own OpenTelemetry hooks stay off, whatever the environment says: matchhub
        # exports counts of its own (/metrics) and nothing else, and the hooks' request data
        # includes bodies, which hold wire tokens. (They also cost lookups CPU: see
        # docs/benchmarks.md.)
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
        # Any route: a request the server cannot read (malformed_request, e.g. a query string
        # past the parser's limit), a JSON body that is not UTF-8 (bad_request), or a query
        # parameter given more than once (repeated_parameter, web/gate.py).
        responses={
            400: {
                "model": ErrorBody,
                "description": "The request could not be read, or is ambiguous",
            }
        },
    )
    app.state.settings = settings
    # Kept by the server's TLS layer (web/server.py), read by the metrics.
    app.state.handshake_refusals = HandshakeRefusals()
    app.state.clock = clock or Clock()
    handlers.install(app)
    # Outermost first: metrics, the audit recorder (refusals included), the gate (the caller
    # and the body, before a slot is taken), admission.
    app.add_middleware(AdmissionMiddleware, limit=settings.request_concurrency)
    app.add_middleware(GateMiddleware)
    app.add_middleware(AuditMiddleware)
    app.add_middleware(MetricsMiddleware)
    app.include_router(health_router)
    # The router tries each router's routes in this order, and a lookup is by far the most
    # frequent request with a body: its router goes before the others (whose paths it shares
    # none of, so the order decides nothing else), behind the health checks only.
    app.include_router(lookups_router)
    app.include_router(metrics_router)
    app.include_router(identity_router)
    app.include_router(catalogue_router)
    app.include_router(uploads_router)
    app.include_router(jobs_router)
    app.include_router(cases_router)
    app.include_router(audit_router)
    return app
