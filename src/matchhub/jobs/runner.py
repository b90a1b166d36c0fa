"""Background workers that claim queued match jobs and run them with the match engine.

A worker holds a lease on the job it runs and renews it from a heartbeat thread; when it
finishes it writes results, summary and state in one transaction that first checks it still
holds the job (a fence), so a worker that lost its lease can never publish over another's run.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import structlog
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from matchhub.jobs import service
from matchhub.jobs.models import MatchJob
from matchhub.jobs.repository import JobRepository
from matchhub.kit.db import session_scope
from matchhub.kit.models import utcnow
from matchhub.kit.segments import RowsDiffer, Segment
from matchhub.kit.settings import Settings
from matchhub.matching.engine import MatchEngine, Source
from matchhub.uploads.repository import SnapshotRepository
from matchhub.uploads.segments import SegmentStore

log = structlog.get_logger("matchhub.jobs")

PLAN_ATTEMPTS = 3
"""How many times a job is planned again when a snapshot changes under its plan."""
HEARTBEAT_RETRY_SECONDS = 1.0


class JobRunner:
    def __init__(
        self,
        factory: sessionmaker[Session],
        engine: MatchEngine,
        segments: SegmentStore,
        settings: Settings,
        *,
        on_state: Callable[[Session, MatchJob, str], None] | None = None,
    ) -> None:
        self.factory = factory
        self.engine = engine
        self.segments = segments
        self._mapped: dict[int, Segment] = {}  # the segments the engine holds, by snapshot
        self.settings = settings
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.on_state = on_state
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._restored = threading.Event()
        self._running = 0
        self._running_lock = threading.Lock()
        self._loading = threading.Lock()  # guards _mapped and the engine's loads

    def restored(self) -> None:
        """The database is another history now (kit/epoch.py): snapshot ids may be issued
        again with other rows, so the engine's loaded snapshots go before the next job. Never
        under a running one: the snapshots its plan names were committed in the history it
        reads, and what the engine holds of them is right."""
        self._restored.set()
        self._wake.set()

    def _admit(self) -> bool:
        """Count a job in; after a restore, first wait for the running ones, then start the
        engine afresh."""
        with self._running_lock:
            if self._restored.is_set():
                if self._running:
                    return False
                self.engine = MatchEngine(self.engine.threads)
                self._mapped.clear()
                self._restored.clear()
            self._running += 1
            return True

    def _release(self) -> None:
        with self._running_lock:
            self._running -= 1

    def notify(self) -> None:
        """A job was queued: claim it now rather than at the next poll."""
        self._wake.set()

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.job_lease_seconds)

    def start(self) -> None:
        for n in range(self.settings.job_workers):
            thread = threading.Thread(target=self._loop, name=f"match-job-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_once()
            except Exception:  # the worker must outlive one failed claim; it is logged
                log.exception("match-job worker error")
                ran = False
            if not ran:
                self._wake.wait(self.settings.job_poll_seconds)
                self._wake.clear()

    def run_once(self) -> bool:
        if not self._admit():
            return False
        try:
            return self._claim_and_run()
        finally:
            self._release()

    def _claim_and_run(self) -> bool:
        now = utcnow()
        with session_scope(self.factory) as session:
            job = JobRepository(session).claim(self.worker, now, now + self.lease)
            if job is None:
                return False
            job_id, attempts = job.id, job.attempts
            if attempts > self.settings.job_max_attempts:
                self._fail(
                    session,
                    job,
                    f"abandoned after {attempts - 1} attempts: the broker "
                    "stopped while running it each time",
                )
                return True
            self._state(session, job, "running")
        self._run(job_id)
        return True

    def _state(self, session: Session, job: MatchJob, state: str) -> None:
        if self.on_state:
            self.on_state(session, job, state)

    def _fail(self, session: Session, job: MatchJob, reason: str) -> None:
        JobRepository(session).delete_results(job.id)
        job.state, job.reason, job.finished_at = "failed", reason, utcnow()
        job.worker = job.lease_until = None
        session.flush()
        self._state(session, job, "failed")

    def _run(self, job_id: str) -> None:
        started = time.monotonic()
        progress = [0.0]
        done = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(job_id, done, progress), daemon=True
        )
        heartbeat.start()
        try:
            if self.settings.job_fault_delay_seconds:
                time.sleep(self.settings.job_fault_delay_seconds)
            planned = self._plan_and_load(job_id)
            if planned is None:
                return
            roster_id, sources = planned
            progress[0] = 0.5
            outcome = self.engine.match(roster_id, sources)
            progress[0] = 0.8
            with session_scope(self.factory) as session:
                repo = JobRepository(session)
                job = repo.owned(job_id, self.worker)
                if job is None:  # lost the lease: another worker runs it now
                    return
                repo.delete_results(job_id)
                repo.write_results(job_id, outcome.ordinals, outcome.sources)
                job.summary = service.summarise(job, outcome, time.monotonic() - started)
                job.state, job.progress, job.finished_at = "succeeded", 1.0, utcnow()
                job.expires_at = job.finished_at + service.retention(
                    self.settings.result_retention_days
                )
                job.worker = job.lease_until = None
                session.flush()
                self._state(session, job, "succeeded")
        except DBAPIError as exc:
            if not _database_away(exc):
                self._failed(job_id, exc)
                return
            self._hand_back(job_id)
        except Exception as exc:
            self._failed(job_id, exc)
        finally:
            done.set()
            heartbeat.join()
            self._evict()

    def _plan_and_load(self, job_id: str) -> tuple[int, list[Source]] | None:
        """Plan the job (its roster and the current snapshots of its flags, each with its row
        count) in one transaction, then load them in another. Between the two, a provider may
        replace a snapshot and its rows be purged: loaded, it would hold fewer rows than the
        plan names (none at all, once purged), and the job would succeed without that source.
        So each load is checked against the plan, and a changed snapshot means planning again
        (it was replaced: the plan takes its replacement), up to PLAN_ATTEMPTS times; a roster
        whose rows went (its matching key was retired) fails the job with the reason. None
        when the job was not this worker's to finish."""
        reason = (
            f"the providers' snapshots changed while the job was loading them, "
            f"{PLAN_ATTEMPTS} times: submit it again"
        )
        for attempt in range(PLAN_ATTEMPTS):
            with session_scope(self.factory) as session:
                job = JobRepository(session).owned(job_id, self.worker)
                if job is None:
                    return None
                job.sources = service.plan(session, job)
                roster_id = job.roster_snapshot_id
                roster = SnapshotRepository(session).get(roster_id)
                expected = {s["snapshot_id"]: int(s["rows"]) for s in job.sources}
                expected[roster_id] = roster.rows if roster is not None else 0
                sources = [Source(s["snapshot_id"], s["flag"], s["source"]) for s in job.sources]
            try:
                self._ensure_loaded(roster_id, [s.snapshot_id for s in sources], expected)
            except SnapshotChanged as exc:
                log.info("a snapshot changed under a job's plan", job=job_id, attempt=attempt)
                if exc.snapshot_id == roster_id:
                    reason = (
                        f"the roster version {roster_id} has been discarded (its matching key "
                        "was retired): register the roster again and submit a new job"
                    )
                    break
                continue
            return roster_id, sources
        with session_scope(self.factory) as session:
            job = JobRepository(session).owned(job_id, self.worker)
            if job is not None:
                self._fail(session, job, reason)
        return None

    def _hand_back(self, job_id: str) -> None:
        """The database went away under the job (a failover, a restart): the job is not at
        fault. Hand it back to be claimed again (by any worker, counting an attempt), or leave
        it to its lease if the database is still away."""
        log.warning("database away during a match job; handing it back", job=job_id)
        try:
            with session_scope(self.factory) as session:
                job = JobRepository(session).owned(job_id, self.worker)
                if job is not None:
                    job.state, job.worker, job.lease_until = "queued", None, None
                    session.flush()
                    self._state(session, job, "queued")
        except DBAPIError:
            log.warning("the job waits for its lease to run out", job=job_id)

    def _failed(self, job_id: str, exc: Exception) -> None:
        log.exception("match job failed", job=job_id)
        try:
            with session_scope(self.factory) as session:
                job = JobRepository(session).owned(job_id, self.worker)
                if job is not None:
                    self._fail(session, job, f"internal error ({type(exc).__name__})")
        except DBAPIError:
            log.warning("could not record the job's failure; its lease will run out", job=job_id)

    def _heartbeat(self, job_id: str, done: threading.Event, progress: list[float]) -> None:
        """Renew the lease every third of it. A beat that fails (the database away, the pool
        exhausted, anything) is logged and tried again soon: the thread never dies of it, or
        the job would lose its lease while it runs and be run twice."""
        interval = self.settings.job_lease_seconds / 3
        wait = interval
        while not done.wait(wait):
            try:
                with session_scope(self.factory) as session:
                    JobRepository(session).renew(
                        job_id, self.worker, utcnow() + self.lease, progress[0]
                    )
            except Exception:
                log.warning(
                    "could not renew a job's lease; trying again", job=job_id, exc_info=True
                )
                wait = min(interval, HEARTBEAT_RETRY_SECONDS)
            else:
                wait = interval

    def _ensure_loaded(
        self, roster_id: int, source_ids: list[int], expected: dict[int, int]
    ) -> None:
        """Give the engine the snapshots it lacks: their segments' maps (built from the
        database first where this host has none it can trust), each checked against the row
        count its plan named (:class:`SnapshotChanged` if it differs, or if the snapshot is
        gone); what the engine holds was checked when it was loaded."""
        # One job thread at a time: another's check must see what this one has just loaded.
        with self._loading:
            self._load(roster_id, source_ids, expected)

    def _load(self, roster_id: int, source_ids: list[int], expected: dict[int, int]) -> None:
        # A segment written in place since the engine mapped it is checked again (and rebuilt).
        changed = self.segments.changed(self._mapped)
        if changed:
            log.warning("segments changed on disk; mapping them again", snapshots=sorted(changed))
            self.engine.drop(changed)
            self.segments.release(changed)
            for snapshot_id in changed:
                self._mapped.pop(snapshot_id, None)
        missing = [i for i in [roster_id, *source_ids] if i not in self.engine.loaded()]
        if not missing:
            return
        with session_scope(self.factory) as session:
            refs = self.segments.refs(session, missing)
            for snapshot_id in missing:
                if snapshot_id not in refs:
                    _check(snapshot_id, 0, expected)
                    continue
                # A segment holds exactly the rows its snapshot records (its header is checked).
                _check(snapshot_id, refs[snapshot_id].rows, expected)
                try:
                    segment = self.segments.segment(session, refs[snapshot_id])
                except RowsDiffer as gone:  # purged while the plan stood
                    _check(snapshot_id, gone.found, expected)
                    raise
                self._mapped[snapshot_id] = segment
                if segment.ordinals is not None:
                    self.engine.load_roster(
                        snapshot_id, segment.ordinals, segment.hi, segment.lo, segment.order
                    )
                else:
                    self.engine.load_provider(snapshot_id, segment.hi, segment.lo, segment.order)

    def _evict(self) -> None:
        """Drop from memory the snapshots that are no longer current."""
        loaded = self.engine.loaded()
        if not loaded:
            return
        with session_scope(self.factory) as session:
            stale = SnapshotRepository(session).no_longer_current(loaded)
        with self._loading:
            self.engine.drop(stale)
            self.segments.release(set(stale))
            for snapshot_id in stale:
                self._mapped.pop(snapshot_id, None)


class SnapshotChanged(Exception):
    """A snapshot did not load with the rows its job's plan named: replaced and purged since."""

    def __init__(self, snapshot_id: int, planned: int, found: int) -> None:
        super().__init__(f"snapshot {snapshot_id}: planned {planned} rows, found {found}")
        self.snapshot_id = snapshot_id


def _check(snapshot_id: int, found: int, expected: dict[int, int]) -> None:
    planned = expected.get(snapshot_id)
    if planned is not None and found != planned:
        raise SnapshotChanged(snapshot_id, planned, found)


def _database_away(exc: DBAPIError) -> bool:
    """A lost or refused connection, not an error of the job's own."""
    return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
