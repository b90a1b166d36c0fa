"""``create_app(settings)``: the HTTP API. Engines and keys are built in the lifespan, never at
import, so building the app (for the OpenAPI document, say) touches nothing on disk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from functools import partial

import structlog
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from matchhub import __version__
from matchhub.audit import service as audit
from matchhub.audit.endpoints import router as audit_router
from matchhub.audit.service import AuditKeys
from matchhub.catalogue.endpoints import router as catalogue_router
from matchhub.identity.endpoints import router as identity_router
from matchhub.jobs import service as jobs
from matchhub.jobs.endpoints import router as jobs_router
from matchhub.jobs.models import MatchJob
from matchhub.jobs.runner import JobRunner
from matchhub.keystore.material import load_key_material
from matchhub.keystore.rekey import Rekeyer, Sealer
from matchhub.kit.db import make_engine, make_sessionmaker, session_scope
from matchhub.kit.models import utcnow
from matchhub.kit.ratelimit import RateLimiter
from matchhub.kit.settings import Settings
from matchhub.lookups.endpoints import router as lookups_router
from matchhub.lookups.keeper import ViewKeeper
from matchhub.lookups.repository import ViewRepository
from matchhub.matching.engine import MatchEngine
from matchhub.uploads import service as uploads
from matchhub.uploads.digests import RunningDigests
from matchhub.uploads.endpoints import router as uploads_router
from matchhub.uploads.service import UploadContext
from matchhub.web import handlers
from matchhub.web.admission import AdmissionMiddleware
from matchhub.web.health import router as health_router
from matchhub.web.metrics import Metrics, MetricsMiddleware
from matchhub.web.metrics import router as metrics_router
from matchhub.web.recorder import AuditMiddleware
from matchhub.web.uow import RequestUnitOfWork
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


def audit_job_state(keys: AuditKeys, session: Session, job: MatchJob, state: str) -> None:
    """Every job state change is an audit entry, in the transaction that makes the change."""
    audit.append(
        session,
        keys,
        kind="job",
        route=None,
        body={
            "job": job.id,
            "state": state,
            "attempt": job.attempts,
            "roster_version": job.roster_snapshot_id,
            "reason": job.reason,
        },
        end_user=job.end_user,
    )


def janitor_pass(factory: sessionmaker[Session], settings: Settings, keys: AuditKeys) -> None:
    """Expire abandoned uploads, purge rows no reader can see, delete expired job results,
    sign a checkpoint when entries have waited long enough. Idempotent."""
    with session_scope(factory) as session:
        older = utcnow() - timedelta(seconds=settings.audit_checkpoint_seconds)
        audit.checkpoint_if_stale(session, keys, older)
    with session_scope(factory) as session:
        uploads.expire_stale(session)
    with session_scope(factory) as session:
        uploads.purge_unreachable(session)
    with session_scope(factory) as session:
        jobs.expire_results(session)


async def _janitor(app: FastAPI, interval: float) -> None:
    while True:
        try:
            await run_in_threadpool(
                janitor_pass, app.state.sessionmaker, app.state.settings, app.state.audit_keys
            )
        except Exception:  # the janitor must outlive a failed pass; it is logged
            log.exception("janitor pass failed")
        await asyncio.sleep(interval)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One connection per admitted request, and some for the job runner, the audit writer
        # and the janitor (web/admission.py).
        engine = make_engine(
            settings.sqlalchemy_url,
            pool_size=settings.request_concurrency,
            max_overflow=BACKGROUND_CONNECTIONS,
        )
        # Read-only routes' sessions: autocommit connections the database keeps read-only
        # (kit/db.py), as many as requests may be admitted, and two for the lookup view's
        # loads and the metrics gauges.
        reader = make_engine(
            settings.sqlalchemy_url,
            read_only=True,
            pool_size=settings.request_concurrency,
            max_overflow=BACKGROUND_READERS,
        )
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.read_sessionmaker = make_sessionmaker(reader)
        app.state.unit_of_work = RequestUnitOfWork(
            app.state.sessionmaker, app.state.read_sessionmaker
        )
        keys = load_key_material(settings.paths)
        app.state.keys = keys
        app.state.uploads = UploadContext(
            rekeyer=Rekeyer(keys.broker_key.value),
            sealer=Sealer(keys.broker_key.value),
            digests=RunningDigests(),
            ttl=timedelta(seconds=settings.upload_ttl_seconds),
        )
        app.state.audit_keys = audit.keys_from(
            keys, settings.hub_name, settings.audit_checkpoint_every
        )
        views = ViewKeeper(
            reader,
            max_rows=settings.lookup_view_max_rows,
            poll_seconds=settings.lookup_view_poll_seconds,
        )
        app.state.lookup_views = views
        writer = AuditWriter(
            app.state.sessionmaker,
            app.state.audit_keys,
            generation=lambda session: ViewRepository(session).generation(hold=True),
            on_stale=views.outdated,
        )
        app.state.audit_writer = writer
        writer.start()
        views.start()
        app.state.metrics = Metrics(lambda: app.state.read_sessionmaker)
        app.state.lookup_limiter = RateLimiter(
            settings.lookup_rate_per_second, settings.lookup_burst
        )
        runner = JobRunner(
            app.state.sessionmaker,
            MatchEngine(),
            settings,
            on_state=partial(audit_job_state, app.state.audit_keys),
        )
        app.state.job_runner = runner
        runner.start()
        janitor = asyncio.create_task(_janitor(app, settings.janitor_interval_seconds))
        try:
            yield
        finally:
            janitor.cancel()
            with suppress(asyncio.CancelledError):
                await janitor
            await run_in_threadpool(runner.stop)
            await run_in_threadpool(views.stop)
            await run_in_threadpool(writer.stop)
            reader.dispose()
            engine.dispose()

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
    )
    app.state.settings = settings
    handlers.install(app)
    app.add_middleware(AuditMiddleware)
    app.add_middleware(AdmissionMiddleware, limit=settings.request_concurrency)
    app.add_middleware(MetricsMiddleware)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(identity_router)
    app.include_router(catalogue_router)
    app.include_router(uploads_router)
    app.include_router(lookups_router)
    app.include_router(jobs_router)
    app.include_router(audit_router)
    return app
