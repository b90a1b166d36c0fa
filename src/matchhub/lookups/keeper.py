"""Keeps the lookups' view (lookups/inmemory.py) current.

One thread polls the view generation and, when it has moved, loads a new view: the registry,
the catalogue and the list of current snapshots in one consistent read, then the tokens of the
snapshots it does not hold yet, as maps of their segments (uploads/segments.py: built from the
database first if this host has none it can trust). A committed snapshot's rows never change,
so the arrays of the others are kept. After each load it sweeps the segments of snapshots that
are no longer current. While a new view loads, and whenever the hub holds more rows than the view
may, :meth:`ViewKeeper.current` is ``None`` and lookups read SQL.

Polling only decides how soon the view catches up; it is not what makes answers right. That
is the audit writer's check at commit (web/writer.py), which also tells the keeper at once
(:meth:`ViewKeeper.outdated`) when it finds the database ahead of the view.

Three threads meet here: the keeper's own (loads), the event loop (:meth:`ViewKeeper.current`
on every lookup) and the audit writer (:meth:`ViewKeeper.outdated`). What they share, the view
and whether it is known to be behind, changes only under one lock, so a writer's news that
arrives while a view loads is not lost when the load finishes: a view older than a generation
the database is known to have reached is installed as behind.
"""

from __future__ import annotations

import threading
import time

import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from matchhub.catalogue.repository import CatalogueRepository
from matchhub.identity.repository import IdentityRepository
from matchhub.kit.db import consistent_read
from matchhub.kit.segments import Segment
from matchhub.lookups.inmemory import FlagSource, HubView, RosterView, TokenSet
from matchhub.lookups.repository import ViewRepository
from matchhub.uploads.repository import SnapshotRepository
from matchhub.uploads.segments import SegmentStore, SnapshotRef

log = structlog.get_logger("matchhub.lookups")

MAX_BACKOFF_SECONDS = 30.0


class ViewKeeper:
    def __init__(
        self, read_only: Engine, segments: SegmentStore, *, max_rows: int, poll_seconds: float
    ) -> None:
        self._engine = read_only
        self._segments = segments
        self._max_rows = max_rows
        self._poll = poll_seconds
        self._lock = threading.Lock()  # guards the four below
        self._view: HubView | None = None
        self._stale = False
        self._seen: int | None = None  # the generation of the last load, with a view or not
        self._reached = -1  # the newest generation the audit writer has seen the database at
        self._too_large = False
        self._mapped: dict[int, Segment] = {}  # the segments of the view's snapshots, by id
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lookup-view", daemon=True)

    def current(self) -> HubView | None:
        """The view, unless it is known to be behind the database (or there is none)."""
        with self._lock:
            return None if self._stale else self._view

    def outdated(self, generation: int) -> None:
        """The database is at ``generation``: stop answering from an older view, now (and from
        one being loaded now, if it is older)."""
        with self._lock:
            self._reached = max(self._reached, generation)
            if self._view is not None and self._view.generation < generation:
                self._stale = True
        self._wake.set()

    def check_soon(self) -> None:
        """Compare the view's generation with the database's now, not at the next poll (one
        small read if nothing changed)."""
        self._wake.set()

    def status(self) -> dict[str, str]:
        """For ``/readyz``: ``current`` (lookups answer from the view), ``loading`` or
        ``catching_up`` (they read SQL meanwhile), ``too_large`` or ``off`` (they read SQL).
        Only the state: the view's size and generation would tell any caller how large other
        agencies' snapshots are and when the registry changes."""
        with self._lock:
            view, stale = self._view, self._stale
        if self._max_rows <= 0:
            state = "off"
        elif self._too_large:
            state = "too_large"
        elif view is None:
            state = "loading"
        else:
            state = "catching_up" if stale else "current"
        return {"state": state}

    def generation(self) -> int:
        """The database's generation, read now."""
        with self._engine.connect() as connection:
            return ViewRepository(Session(bind=connection)).generation()

    def start(self) -> None:
        if self._max_rows > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self.refresh()
                failures = 0
            except Exception:  # the keeper outlives a failed load; lookups read SQL meanwhile
                failures += 1
                log.error("could not load the lookup view", failures=failures, exc_info=True)
                with self._lock:
                    self._stale, self._seen = True, None
            self._wake.wait(min(self._poll * 2**failures, MAX_BACKOFF_SECONDS))
            self._wake.clear()

    def refresh(self) -> None:
        """Load a new view if the database's generation is not the one last loaded, or if a
        segment it maps is no longer the file that was verified (uploads/segments.py)."""
        now = self.generation()
        changed = self._segments.changed(self._mapped)
        if changed:
            log.warning(
                "segments changed on disk; loading the view again", snapshots=sorted(changed)
            )
            self._segments.release(changed)
        with self._lock:
            if now == self._seen and not self._stale and not changed:
                return
            self._stale = True  # the view held (if any) is behind `now`, or maps a changed file
            for snapshot_id in changed:
                self._mapped.pop(snapshot_id, None)
        started = time.perf_counter()
        generation, fresh = self._load()
        with self._lock:
            self._view, self._seen = fresh, generation
            self._stale = fresh is None or generation < self._reached
        if fresh is not None:
            log.info(
                "lookup view loaded",
                generation=fresh.generation,
                rows=fresh.rows,
                seconds=round(time.perf_counter() - started, 3),
            )
        try:  # a replaced snapshot's segment goes soon after its rows (uploads/segments.py)
            self.sweep()
        except Exception:  # the view does not depend on the sweep; the next load tries again
            log.warning("could not sweep the segments", exc_info=True)

    def _load(self) -> tuple[int, HubView | None]:
        # What must agree is read in one snapshot; the tokens of snapshots new to the view are
        # read after it, each in a short statement of its own, so no long transaction holds
        # the snapshot table while a purge waits to drop a replaced partition. That is safe
        # because a committed snapshot's rows never change while it exists; if one is replaced
        # and purged meanwhile, the database's generation has moved past this view, and no
        # answer from it can pass the audit writer's check.
        with consistent_read(self._engine) as connection:
            session = Session(bind=connection)
            repo = ViewRepository(session)
            generation = repo.generation()
            snapshots = SnapshotRepository(session).current_listing()
            catalogue = CatalogueRepository(session)
            live_grants = catalogue.live_grants()
            purposes = frozenset(catalogue.purpose_codes())
            credentials = IdentityRepository(session).credentials()
        rows = sum(s.rows for s in snapshots)
        self._too_large = rows > self._max_rows
        if self._too_large:
            log.warning("too many rows for the lookup view", rows=rows, limit=self._max_rows)
            self._mapped = {}
            return generation, None
        # Let go of replaced snapshots' maps before loading their successors'.
        kept = {s.id: self._mapped[s.id] for s in snapshots if s.id in self._mapped}
        self._segments.release(set(self._mapped) - set(kept))
        self._mapped = kept
        for s in snapshots:
            if self._stopping.is_set():  # the broker is stopping: no view, no more reads
                return generation, None
            if s.id not in kept:
                kept[s.id] = self._read_segment(SnapshotRef(s.id, s.kind, s.rows, s.upload_id))
        tokens = {i: TokenSet.from_sorted(m.hi, m.lo) for i, m in kept.items()}  # no copies
        grants: dict[tuple[str, str], set[str]] = {}
        for grantee, purpose, flag in live_grants:
            grants.setdefault((grantee, purpose), set()).add(flag)
        view = HubView(
            generation=generation,
            credentials={c.fingerprint: c for c in credentials},
            grants={k: frozenset(v) for k, v in grants.items()},
            purposes=purposes,
            rosters={
                s.agency_id: RosterView(s.id, s.key_version, tokens[s.id])
                for s in snapshots
                if s.kind == "roster"
            },
            sources=tuple(
                FlagSource(s.id, s.flag_code, s.agency_kind, s.as_of, tokens[s.id])
                for s in snapshots
                if s.kind == "flag"
            ),
            rows=rows,
        )
        return generation, view

    def _read_segment(self, ref: SnapshotRef) -> Segment:
        """The snapshot's segment, mapped (built from the database first if this host has
        none it can trust): the view holds no copy of its own."""
        with self._engine.connect() as connection:
            return self._segments.segment(Session(bind=connection), ref)

    def sweep(self) -> None:
        """Remove this host's segment files of snapshots that are no longer current."""
        with self._engine.connect() as connection:
            self._segments.sweep(Session(bind=connection))
