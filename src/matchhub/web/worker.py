"""``matchhub worker``: the background work (web/background.py) in a process of its own, with
no HTTP. Any number may run beside any number of ``matchhub serve`` processes, on any host
sharing the database and the state folder's keys. SIGTERM or SIGINT stops it: a running job
has 30 s to finish; past that the process ends without publishing it, and another worker runs
it again once its lease has run out. Nothing is ever half-published."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import structlog

from matchhub.audit import service as audit
from matchhub.keystore.material import load_key_material
from matchhub.kit import logs
from matchhub.kit.db import make_engine, make_sessionmaker
from matchhub.kit.epoch import EpochWatch
from matchhub.kit.settings import Settings
from matchhub.uploads.segments import SegmentStore
from matchhub.web.app import BACKGROUND_CONNECTIONS
from matchhub.web.background import Background
from matchhub.web.fleet import Fleet

log = structlog.get_logger("matchhub")


def run_worker(settings: Settings, stop: threading.Event | None = None) -> None:
    logs.configure()
    keys = load_key_material(settings.paths)  # fail at once, with a clear message
    audit_keys = audit.keys_from(keys, settings.hub_name, settings.audit_checkpoint_every)
    engine = make_engine(
        settings.sqlalchemy_url,
        pool_size=settings.job_workers + 2,
        max_overflow=BACKGROUND_CONNECTIONS,
    )
    factory = make_sessionmaker(engine)
    epoch = EpochWatch()
    segments = SegmentStore(settings.paths.segments, lambda: epoch.known)
    background = Background(factory, settings, audit_keys, segments)
    fleet = Fleet(factory, "worker", interval=settings.heartbeat_seconds)
    epoch.listeners.append(lambda _old, _new: segments.restored())
    epoch.listeners.append(lambda _old, _new: background.restored())
    epoch.attach(engine)
    stop = stop or threading.Event()

    def stopping(signum: int, _frame: FrameType | None) -> None:
        log.info("worker stopping", signal=signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stopping)
        signal.signal(signal.SIGINT, stopping)
    fleet.start()
    background.start()
    log.info("worker running", process=fleet.id, job_threads=settings.job_workers)
    try:
        stop.wait()
    finally:
        background.stop()
        fleet.stop()
        engine.dispose()
