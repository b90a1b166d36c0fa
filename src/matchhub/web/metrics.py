"""``GET /metrics``: request counts and latencies per route template, a few gauges read from
the database at scrape time (audit log size and its last checkpoint, open uploads, jobs by
state, current snapshots, broker processes alive), and this process's own state (its lookup
view, its share of the lookup rate, the database histories it has seen, the TLS handshakes it
refused). Only a ``monitor`` agency reads them (scope ``metrics:read``): the counts per route
say how often each kind of agency called, which no provider may learn of the ministry. A
scrape is not audited (it changes nothing and names no one). The alert rules in
deploy/alerts.yml read these names."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any, cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from matchhub.audit.models import AuditCheckpoint, AuditState
from matchhub.cases.models import CaseState
from matchhub.cases.repository import CaseRepository
from matchhub.identity.auth import SCOPE_ATTRIBUTE, authenticate_request
from matchhub.identity.schemas import Principal
from matchhub.identity.scopes import Scope as Needs
from matchhub.jobs.models import MatchJob
from matchhub.kit.epoch import EpochWatch
from matchhub.kit.models import utcnow
from matchhub.kit.responses import errors
from matchhub.kit.settings import Settings
from matchhub.uploads import service as upload_service
from matchhub.uploads.models import Upload
from matchhub.uploads.repository import SnapshotRepository
from matchhub.uploads.segments import SegmentStore
from matchhub.web.fleet import Fleet
from matchhub.web.handshakes import REASONS, HandshakeRefusals
from matchhub.web.views import Views

router = APIRouter(tags=["health"])


class _DatabaseGauges(Collector):
    def __init__(self, factory: Callable[[], sessionmaker[Session]]) -> None:
        self.factory = factory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.factory()() as session:
            audit = session.scalar(select(AuditState.size)) or 0
            uploads = session.scalar(
                select(func.count()).select_from(Upload).where(Upload.state == "open")
            )
            jobs = dict(
                session.execute(select(MatchJob.state, func.count()).group_by(MatchJob.state)).all()
            )
            snapshots = SnapshotRepository(session).count_current()
            checkpointed = session.scalar(select(func.max(AuditCheckpoint.created_at)))
            purges = upload_service.purges_waiting(session)
            cases = CaseRepository(session).count_by_state()
        yield GaugeMetricFamily("matchhub_audit_entries", "Entries in the audit log", value=audit)
        if checkpointed is not None:
            if checkpointed.tzinfo is None:  # SQLite keeps no zone; the column is UTC
                checkpointed = checkpointed.replace(tzinfo=utcnow().tzinfo)
            yield GaugeMetricFamily(
                "matchhub_audit_checkpoint_age_seconds",
                "Seconds since the last signed audit checkpoint",
                value=(utcnow() - checkpointed).total_seconds(),
            )
        yield GaugeMetricFamily(
            "matchhub_purges_waiting",
            "Replaced or discarded snapshots whose rows are still to be purged",
            value=purges or 0,
        )
        yield GaugeMetricFamily("matchhub_open_uploads", "Uploads open now", value=uploads or 0)
        job_gauge = GaugeMetricFamily("matchhub_jobs", "Match jobs by state", labels=["state"])
        for state in ("queued", "running", "succeeded", "failed"):
            job_gauge.add_metric([state], jobs.get(state, 0))
        yield job_gauge
        case_gauge = GaugeMetricFamily(
            "matchhub_cases", "Cases by recorded state (counts only)", labels=["state"]
        )
        for case_state in CaseState:
            case_gauge.add_metric([case_state.value], cases.get(case_state.value, 0))
        yield case_gauge
        snap = GaugeMetricFamily(
            "matchhub_current_snapshots", "Current snapshots by kind", labels=["kind"]
        )
        for kind in ("flag", "roster"):
            snap.add_metric([kind], snapshots.get(kind, 0))
        yield snap


class _ProcessGauges(Collector):
    """This process's own state, and the broker processes its heartbeat last counted."""

    def __init__(
        self, fleet: Fleet, epoch: EpochWatch, views: Views, segments: SegmentStore
    ) -> None:
        self.fleet, self.epoch, self.views, self.segments = fleet, epoch, views, segments

    def collect(self) -> Iterator[GaugeMetricFamily]:
        processes = GaugeMetricFamily(
            "matchhub_broker_processes",
            "Broker processes alive by role, as this process's last heartbeat counted them",
            labels=["role"],
        )
        for role in ("serve", "worker"):
            processes.add_metric([role], self.fleet.counts.get(role, 0))
        yield processes
        state = self.views.status()["state"]
        view = GaugeMetricFamily(
            "matchhub_lookup_view_state",
            "This process's lookup view: 1 for the state it is in",
            labels=["state"],
        )
        for name in ("current", "loading", "catching_up", "too_large", "off"):
            view.add_metric([name], 1 if state == name else 0)
        yield view
        yield GaugeMetricFamily(
            "matchhub_database_history_changes",
            "Times this process found the database restored or failed over (kit/epoch.py)",
            value=self.epoch.changes,
        )
        yield GaugeMetricFamily(
            "matchhub_segments_built",
            "Snapshot segments this process built from the database (uploads/segments.py)",
            value=self.segments.built,
        )
        yield GaugeMetricFamily(
            "matchhub_segments_rejected",
            "Segment files this process found damaged or stale, and rebuilt",
            value=self.segments.rejected,
        )


class _HandshakeCounts(Collector):
    def __init__(self, refusals: HandshakeRefusals) -> None:
        self.refusals = refusals

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "matchhub_tls_handshakes_refused",
            "TLS handshakes this process refused, by reason (no certificate, another CA, "
            "revoked, expired, a certificate unfit for client authentication, other)",
            labels=["reason"],
        )
        for reason in REASONS:
            family.add_metric([reason], self.refusals.counts[reason])
        yield family


class Metrics:
    """One registry per app: no global state, so tests and several apps never collide."""

    def __init__(
        self,
        factory: Callable[[], sessionmaker[Session]],
        fleet: Fleet,
        epoch: EpochWatch,
        views: Views,
        *,
        segments: SegmentStore,
        refusals: HandshakeRefusals,
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "matchhub_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "matchhub_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.registry.register(_DatabaseGauges(factory))
        self.registry.register(_ProcessGauges(fleet, epoch, views, segments))
        self.registry.register(_HandshakeCounts(refusals))


Scope = MutableMapping[str, Any]


class MetricsMiddleware:
    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def counted(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            metrics = cast(Metrics | None, getattr(scope["app"].state, "metrics", None))
            if metrics is not None:
                # The route template, never the raw path: a path could carry anything.
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                metrics.requests.labels(scope["method"], route, str(status[0])).inc()
                metrics.latency.labels(scope["method"], route).observe(
                    time.perf_counter() - started
                )


def monitor(request: Request) -> Principal:
    """The caller, authenticated from the registry like any route's and holding
    ``metrics:read``, through a read-only session of its own rather than the request's unit of
    work, which would audit every scrape."""
    factory = cast(sessionmaker[Session], request.app.state.read_sessionmaker)
    settings = cast(Settings, request.app.state.settings)
    with factory() as session:
        return authenticate_request(request, session, settings, Needs.metrics_read)


setattr(monitor, SCOPE_ATTRIBUTE, Needs.metrics_read)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **errors(401, 403)},
    dependencies=[Depends(monitor)],
)
def metrics(request: Request) -> Response:
    """Prometheus text format, for a ``monitor`` agency's certificate only."""
    registry = cast(Metrics, request.app.state.metrics).registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
