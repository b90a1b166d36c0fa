"""The background work: match jobs, and the janitor's rounds (checkpoints when entries have
waited, abandoned uploads expired, replaced rows purged, lapsed indications recorded, closed
cases and expired job results deleted with a receipt each).

``matchhub worker`` runs it alone; ``matchhub serve`` runs it too when
``MATCHHUB_SERVE_BACKGROUND`` is on (the default, so ``make demo`` and a lone ``matchhub serve``
do everything in one process). Any number of processes may run it at once: a job is claimed
by one of them (``FOR UPDATE SKIP LOCKED``) and published under its lease fence, and every
janitor step is idempotent and safe beside another.

The janitor also prepares this host's snapshot segments (uploads/segments.py): it builds the
segment of every current snapshot that has none, soon after its commit, so that readers seldom
wait for one, and sweeps the files of snapshots that are no longer current. Segments are named
by the database's history, so after a restore (kit/epoch.py) the old ones are never read.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from functools import partial

import structlog
from sqlalchemy.orm import Session, sessionmaker

from matchhub.audit import service as audit
from matchhub.audit.service import AuditKeys
from matchhub.cases import retention
from matchhub.jobs.models import MatchJob
from matchhub.jobs.runner import JobRunner
from matchhub.kit.clock import Clock
from matchhub.kit.db import session_scope
from matchhub.kit.models import utcnow
from matchhub.kit.settings import Settings
from matchhub.matching.engine import MatchEngine, usable_cores
from matchhub.uploads import service as uploads
from matchhub.uploads.segments import SegmentStore

log = structlog.get_logger("matchhub")

PURGE_PATIENCE_SECONDS = 30.0
PURGE_RETRY_SECONDS = 0.2


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


def janitor_pass(
    factory: sessionmaker[Session],
    settings: Settings,
    keys: AuditKeys,
    clock: Clock,
    segments: SegmentStore | None = None,
) -> None:
    """Expire abandoned uploads, purge rows no reader can see (and their segments), record
    lapsed indications, delete closed cases and job results past their retention (a receipt
    each in the audit log, cases/retention.py), sign a checkpoint when entries have waited long
    enough, build the segments this host lacks. Idempotent."""
    with session_scope(factory) as session:
        older = utcnow() - timedelta(seconds=settings.audit_checkpoint_seconds)
        audit.checkpoint_if_stale(session, keys, older)
    with session_scope(factory) as session:
        uploads.expire_stale(session)
    with session_scope(factory) as session:
        uploads.purge_unreachable(session)
    retention.run(factory, keys, settings, clock.now())
    if segments is not None:
        with session_scope(factory) as session:
            segments.sweep(session)
        with session_scope(factory) as session:
            segments.prepare(session)


class Background:
    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        keys: AuditKeys,
        segments: SegmentStore,
        clock: Clock | None = None,
    ) -> None:
        self._factory, self._settings, self._keys = factory, settings, keys
        self.segments = segments
        self._clock = clock or Clock()
        # The job threads share the cores a match spreads over.
        threads = max(1, usable_cores() // max(1, settings.job_workers))
        self.runner = JobRunner(
            factory,
            MatchEngine(threads),
            segments,
            settings,
            on_state=partial(audit_job_state, keys),
        )
        self._stop = threading.Event()
        self._janitor = threading.Thread(target=self._sweep, name="janitor", daemon=True)
        self._purge = threading.Event()
        self._purger = threading.Thread(target=self._purge_loop, name="purger", daemon=True)

    def start(self) -> None:
        self.runner.start()
        self._janitor.start()
        self._purger.start()

    def stop(self) -> None:
        self._stop.set()
        self._purge.set()
        self.runner.stop()
        for thread in (self._janitor, self._purger):
            if thread.is_alive():
                thread.join(timeout=30)

    def purge_soon(self) -> None:
        """A commit or an abort left rows to purge: purge them now, in the purger's thread."""
        self._purge.set()

    def _purge_loop(self) -> None:
        """Purge what commits replaced, retrying while a transaction older than the
        replacement is still open (uploads/service.py); what still waits after
        PURGE_PATIENCE_SECONDS is left to the janitor's next round."""
        while not self._stop.is_set():
            self._purge.wait()
            self._purge.clear()
            deadline = time.monotonic() + PURGE_PATIENCE_SECONDS
            while not self._stop.is_set():
                try:
                    with session_scope(self._factory) as session:
                        uploads.purge_unreachable(session)
                        waiting = uploads.purges_waiting(session)
                except Exception:  # the purger must outlive a failed pass; it is logged
                    log.exception("purge after a commit failed")
                    waiting = 1
                if not waiting or time.monotonic() > deadline:
                    break
                self._stop.wait(PURGE_RETRY_SECONDS)

    def notify(self) -> None:
        """A job was queued here: claim it now rather than at the next poll."""
        self.runner.notify()

    def restored(self) -> None:
        self.runner.restored()

    def _sweep(self) -> None:
        while not self._stop.is_set():
            try:
                janitor_pass(self._factory, self._settings, self._keys, self._clock, self.segments)
            except Exception:  # the janitor must outlive a failed pass; it is logged
                log.exception("janitor pass failed")
            self._stop.wait(self._settings.janitor_interval_seconds)


class NoBackground:
    """``matchhub serve`` without background work: the workers poll for queued jobs, and
    their janitor purges what commits replaced."""

    def notify(self) -> None:
        pass

    def purge_soon(self) -> None:
        pass
