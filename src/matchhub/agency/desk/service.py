"""What the desk does, for the pages and the command line alike: register the roster, run a
collective match and make its lists, look up a case. Each acts for one named `Staff` (every
broker request names them) and leaves its line in the desk's log.

Long work (a roster, a match) runs in a background thread and records its stage and progress in
the desk's database, where the pages read it. A desk restarted in the middle resumes watching a
match the broker is running, and marks an interrupted roster registration failed (nothing of it
became current: the previous roster stays).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from matchhub.agency.connector.definition import Definition, load
from matchhub.agency.connector.push import Chunk, PushClient, PushError
from matchhub.agency.connector.witness import ApiWitness, WitnessError
from matchhub.agency.desk import accounts, eventlog
from matchhub.agency.desk.accounts import Staff
from matchhub.agency.desk.broker import BrokerClient, BrokerError, Catalogue
from matchhub.agency.desk.config import DeskConfig
from matchhub.agency.desk.db import Database
from matchhub.agency.desk.lookup import Entry, Problem, parse_ids
from matchhub.agency.desk.models import FINISHED_STATES, Case, Match, Roster, utcnow
from matchhub.agency.desk.resolve import ResolveError, parse_results, resolve
from matchhub.agency.desk.roster import ExtractError, RosterIndex, build
from matchhub.protocol.tokens import MatchingKey, Tokeniser
from matchhub.protocol.wire import COMPACT

log = logging.getLogger("matchhub.desk")

CHUNK_ROWS = 100_000
DEFAULT_SCHEME = "iq.ncn"
"""The ID scheme of a desk without a roster definition (an audit office's)."""
POLL_SECONDS = 0.5
_PROGRESS_SECONDS = 0.5


class DeskError(Exception):
    """A refusal to show as it is: ``key`` is a message key (i18n) or None, ``text`` the
    detail (safe: never an ID, a name or a token)."""

    def __init__(self, text: str, key: str | None = None) -> None:
        super().__init__(text)
        self.text, self.key = text, key


@dataclass
class LookupOutcome:
    entries: list[Entry]
    problems: list[Problem]
    roster_version: int | None = None  # the index the entries' rows are in
    reference: int | None = None  # the lookup's audit entry at the broker (a case names it)


class Desk:
    """The desk's state and work: its settings, database, key, definition and rosters."""

    def __init__(self, config: DeskConfig, database: Database | None = None) -> None:
        self.config = config
        self.db = database or Database(config.database_url)
        # An audit office's desk holds no roster definition, and a matching key only if the
        # office was given one for subject-access requests.
        self._definition = load(config.definition) if config.definition.exists() else None
        self._key = (
            MatchingKey.from_file(config.matching_key) if config.matching_key.exists() else None
        )
        self._tokeniser: Tokeniser | None = None
        self._catalogue: Catalogue | None = None
        self._indexes: dict[int, RosterIndex] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.poll_seconds = POLL_SECONDS
        # Tests of the desk's own logic may put a fake broker here (httpx.MockTransport).
        self.broker_transport: httpx.BaseTransport | None = None

    @property
    def definition(self) -> Definition:
        if self._definition is None:
            raise DeskError("this desk holds no roster definition", "error.no_definition")
        return self._definition

    @property
    def key(self) -> MatchingKey:
        if self._key is None:
            raise DeskError("this desk holds no matching key", "error.no_matching_key")
        return self._key

    @property
    def has_key(self) -> bool:
        return self._key is not None

    @property
    def tokeniser(self) -> Tokeniser:
        if self._tokeniser is None:
            scheme = self._definition.scheme if self._definition is not None else DEFAULT_SCHEME
            self._tokeniser = Tokeniser(self.key, scheme)
        return self._tokeniser

    def close(self) -> None:
        for thread in self._threads:
            thread.join(timeout=30)
        for index in self._indexes.values():
            index.close()
        self.db.close()

    # --- staff -----------------------------------------------------------------------------

    def staff(self, name: str) -> Staff:
        """A member of staff by name, for the command line's ``--as NAME``."""
        with self.db.transaction() as session:
            user = accounts.by_name(session, name)
            if user is None or user.disabled:
                raise DeskError(f"no active member of staff is called {name!r}")
            return Staff.of(user)

    def broker(self, staff: Staff) -> BrokerClient:
        return BrokerClient(self.config, staff, transport=self.broker_transport)

    def catalogue(self, staff: Staff) -> Catalogue:
        """The flags granted to the ministry and the purposes, fetched once per desk process
        (the labels rarely change; a restart picks up a new catalogue)."""
        if self._catalogue is None:
            with self.broker(staff) as broker:
                self._catalogue = broker.catalogue()
        return self._catalogue

    def record(self, staff: Staff | None, action: str, outcome: str = "ok", **details: Any) -> None:
        with self.db.transaction() as session:
            eventlog.record(session, staff.name if staff else None, action, outcome, **details)

    # --- the roster ------------------------------------------------------------------------

    def current_roster(self) -> Roster | None:
        with self.db.transaction() as session:
            found: Roster | None = session.scalars(
                select(Roster).where(Roster.state == "current").order_by(Roster.id.desc())
            ).first()
            return found

    def rosters(self, limit: int = 20) -> list[Roster]:
        with self.db.transaction() as session:
            return list(session.scalars(select(Roster).order_by(Roster.id.desc()).limit(limit)))

    def index(self, version: int) -> RosterIndex:
        with self._lock:
            index = self._indexes.get(version)
            if index is None:
                folder = self.config.rosters / str(version)
                if not (folder / "meta.json").exists():
                    raise DeskError(
                        f"the roster version {version} is no longer held by this desk",
                        "error.roster_gone",
                    )
                index = self._indexes[version] = RosterIndex(folder)
            return index

    def start_roster(self, staff: Staff, extract: Path, *, wait: bool = False) -> int:
        """Register the roster from `extract` (moved into the desk's home if it sits in
        ``incoming/``, copied otherwise). Returns the registration's number."""
        with self.db.transaction() as session:
            roster = Roster(started_by=staff.name, state="running", stage="reading", counts={})
            session.add(roster)
            session.flush()
            number = roster.id
            eventlog.record(session, staff.name, "roster.start", registration=number)
        self._spawn(f"roster-{number}", self._register, number, staff, extract, wait=wait)
        return number

    def _register(self, number: int, staff: Staff, extract: Path) -> None:
        work = self.config.rosters / f"building-{number}"
        shutil.rmtree(work, ignore_errors=True)
        progress = _Progress(self, Roster, number)
        try:
            built = build(
                extract,
                self.definition,
                self.key,
                work,
                max_rejected=self.config.settings.max_rejected,
                progress=lambda share: progress.update("reading", share * 0.5),
                label="the uploaded extract"
                if extract.parent == self.config.incoming
                else extract.name,
            )
            counts = {
                "rows": built.rows,
                "people": built.people,
                "households": built.households,
                "rejected": built.rejected,
            }
            progress.update("sending", 0.5, counts=counts)
            version = self._push_roster(staff, built.push_tokens(), progress)
            final = self.config.rosters / str(version)
            shutil.rmtree(final, ignore_errors=True)
            work.rename(final)
            if extract != self.config.extract:
                _move_or_copy(extract, self.config.extract, self.config.incoming)
            with self.db.transaction() as session:
                for previous in session.scalars(select(Roster).where(Roster.state == "current")):
                    previous.state = "replaced"
                roster = session.get(Roster, number)
                assert roster is not None  # noqa: S101 (made above)
                roster.state, roster.stage, roster.progress = "current", "done", 1.0
                roster.version, roster.folder, roster.counts = version, str(final), counts
                roster.finished_at = utcnow()
                eventlog.record(
                    session,
                    staff.name,
                    "roster.registered",
                    registration=number,
                    version=version,
                    people=built.people,
                    rejected=sum(built.rejected.values()),
                )
            self._prune_rosters(keep=version)
        except (ExtractError, BrokerError, PushError, WitnessError, OSError, DeskError) as exc:
            shutil.rmtree(work, ignore_errors=True)
            if extract.parent == self.config.incoming:
                extract.unlink(missing_ok=True)
            self._fail(Roster, number, staff, "roster.failed", _message(exc))

    def _push_roster(self, staff: Staff, tokens: bytes, progress: _Progress) -> int:
        rows = len(tokens) // 32
        with self.broker(staff) as broker:
            witness = ApiWitness(self.config.witness)
            witness.before_push(broker.http)
            pusher = PushClient(broker.http)
            try:
                upload = pusher.open("roster", self.key.version, [], rows)
                step = CHUNK_ROWS * 32

                def chunks() -> Iterator[Chunk]:
                    for seq, start in enumerate(range(0, len(tokens), step)):
                        body = tokens[start : start + step]
                        yield Chunk(seq, body, len(body) // 32)

                def sent(chunk: Chunk) -> None:
                    done = min((chunk.seq + 1) * CHUNK_ROWS, rows) / max(rows, 1)
                    progress.update("sending", 0.5 + 0.5 * done)

                result = pusher.send(upload["id"], chunks, COMPACT, rows, on_chunk=sent)
            except PushError as exc:
                raise BrokerError(exc.code, exc.message, exc.status) from None
            witness.after_commit(broker.http, result.upload)
        version = result.upload.get("roster_version")
        if not isinstance(version, int):
            raise BrokerError("no_roster_version", "the broker named no roster version")
        return version

    def _prune_rosters(self, keep: int) -> None:
        """Keep the last ``rosters_kept`` registered rosters' indexes (older matches' results
        resolve against the roster they ran on); delete older ones."""
        folders = sorted(
            (int(p.name) for p in self.config.rosters.iterdir() if p.name.isdigit()),
            reverse=True,
        )
        with self.db.transaction() as session:
            # A roster a case still open was opened on stays: its letter needs the name.
            pinned = set(
                session.scalars(
                    select(Case.roster_version).where(Case.state.not_in(FINISHED_STATES))
                )
            )
        for version in folders[self.config.settings.rosters_kept :]:
            if version == keep or version in pinned:
                continue
            with self._lock:
                index = self._indexes.pop(version, None)
            if index is not None:
                index.close()
            shutil.rmtree(self.config.rosters / str(version), ignore_errors=True)

    # --- collective matches ----------------------------------------------------------------

    def matches(self, limit: int = 50) -> list[Match]:
        with self.db.transaction() as session:
            return list(session.scalars(select(Match).order_by(Match.id.desc()).limit(limit)))

    def match(self, number: int) -> Match | None:
        with self.db.transaction() as session:
            found: Match | None = session.get(Match, number)
            return found

    def incoming_dir(self) -> Path:
        self.config.incoming.mkdir(mode=0o700, exist_ok=True)
        return self.config.incoming

    def match_folder(self, number: int) -> Path:
        return self.config.lists / str(number)

    def start_match(
        self, staff: Staff, purpose: str, flags: list[str] | None, *, wait: bool = False
    ) -> int:
        if self.current_roster() is None:
            raise DeskError("register the roster first", "matches.need_roster")
        catalogue = self.catalogue(staff)
        if purpose not in {p["code"] for p in catalogue.purposes}:
            raise DeskError(f"unknown purpose {purpose!r}")
        granted = {f["code"] for f in catalogue.flags}
        chosen = sorted(set(flags or ()) & granted) or None
        if chosen is not None and set(chosen) == granted:
            chosen = None
        with self.db.transaction() as session:
            match = Match(purpose=purpose, flags=chosen, started_by=staff.name, state="running")
            session.add(match)
            session.flush()
            number = match.id
            eventlog.record(session, staff.name, "match.start", match=number, purpose=purpose)
        self._spawn(f"match-{number}", self._run_match, number, staff, wait=wait)
        return number

    def _run_match(self, number: int, staff: Staff) -> None:
        progress = _Progress(self, Match, number)
        try:
            with self.broker(staff) as broker:
                match = self.match(number)
                assert match is not None  # noqa: S101
                job_id = match.job_id
                if job_id is None:
                    job = broker.open_job(match.purpose, match.flags)
                    job_id = str(job["id"])
                    progress.update(
                        "queued", 0.02, job_id=job_id, roster_version=job["roster_version"]
                    )
                job = self._wait_for(broker, job_id, progress)
                if job["state"] != "succeeded":
                    raise DeskError(f"the broker's match job failed: {job.get('reason')}")
                progress.update("resolving", 0.85)
                with broker.results(job_id) as response:
                    parsed = parse_results(response.iter_bytes(1 << 20))
            index = self.index(int(job["roster_version"]))
            labels = self.catalogue(staff).labels()
            folder = self.match_folder(number)
            shutil.rmtree(folder, ignore_errors=True)
            summary = resolve(parsed, index, labels, folder)
            with self.db.transaction() as session:
                row = session.get(Match, number)
                assert row is not None  # noqa: S101
                row.state, row.stage, row.progress = "ready", "done", 1.0
                row.summary, row.finished_at = summary, utcnow()
                eventlog.record(
                    session,
                    staff.name,
                    "match.ready",
                    match=number,
                    flagged=summary["flagged_beneficiaries"],
                    households=summary["flagged_households"],
                )
        except (BrokerError, ResolveError, DeskError, OSError) as exc:
            self._fail(Match, number, staff, "match.failed", _message(exc))

    def _wait_for(self, broker: BrokerClient, job_id: str, progress: _Progress) -> dict[str, Any]:
        while True:
            job = broker.job(job_id)
            if job["state"] in ("succeeded", "failed"):
                return job
            stage = "matching" if job["state"] == "running" else "queued"
            progress.update(stage, 0.05 + 0.8 * float(job.get("progress") or 0.0))
            time.sleep(self.poll_seconds)

    def resume(self) -> None:
        """After a restart: watch again the matches the broker may still be running; a roster
        registration cut short is failed (the previous roster stays current)."""
        with self.db.transaction() as session:
            for roster in session.scalars(select(Roster).where(Roster.state == "running")):
                roster.state, roster.error = "failed", "interrupted by a restart of the desk"
                roster.finished_at = utcnow()
            running = list(session.scalars(select(Match).where(Match.state == "running")))
            for match in running:
                if match.job_id is None:
                    match.state, match.error = "failed", "interrupted by a restart of the desk"
                    match.finished_at = utcnow()
        for match in running:
            if match.job_id is None:
                continue
            user = self._starter(match.started_by)
            if user is None:
                with self.db.transaction() as session:
                    row = session.get(Match, match.id)
                    if row is not None:
                        row.state, row.finished_at = "failed", utcnow()
                        row.error = "the member of staff who started it is no longer active"
                continue
            self._spawn(f"match-{match.id}", self._run_match, match.id, user, wait=False)

    def _starter(self, name: str) -> Staff | None:
        with suppress(DeskError):
            return self.staff(name)
        return None

    # --- lookups ---------------------------------------------------------------------------

    def lookup(self, staff: Staff, text: str, purpose: str) -> LookupOutcome:
        """Look up the IDs of `text` (one a line) for `purpose`. With any bad line, nothing is
        sent and the outcome names the problems."""
        entries, problems = parse_ids(text, self.definition.scheme, self.tokeniser)
        limit = self.config.settings.lookup_max_ids
        if problems or not entries:
            self.record(staff, "lookup.refused", "refused", lines=len(problems))
            return LookupOutcome([], problems)
        if len(entries) > limit:
            raise DeskError(f"at most {limit} numbers at once", "lookup.too_many")
        with self.broker(staff) as broker:
            whole = broker.lookup_answer(purpose, [e.token for e in entries])
        answers = {r["token"]: r for r in whole["results"]}
        roster = self.current_roster()
        index = self.index(roster.version) if roster and roster.version is not None else None
        rows = index.find(b"".join(bytes.fromhex(e.token) for e in entries)) if index else None
        for position, entry in enumerate(entries):
            answer = answers.get(entry.token, {})
            entry.on_roster = bool(answer.get("on_roster"))
            entry.flags = list(answer.get("flags", []))
            if index is not None and rows is not None and rows[position] >= 0:
                entry.person = index.person(int(rows[position]))
                entry.row = int(rows[position])
        self.record(
            staff,
            "lookup",
            purpose=purpose,
            ids=len(entries),
            flagged=sum(1 for e in entries if e.flags),
        )
        version = roster.version if roster is not None and index is not None else None
        return LookupOutcome(entries, [], version, whole.get("reference"))

    # --- plumbing --------------------------------------------------------------------------

    def _spawn(self, name: str, target: Callable[..., None], *args: Any, wait: bool) -> None:
        if wait:
            target(*args)
            return
        thread = threading.Thread(target=_logged(target), args=args, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _fail(self, model: Any, number: int, staff: Staff, action: str, message: str) -> None:
        with self.db.transaction() as session:
            row = session.get(model, number)
            if row is not None:
                row.state, row.error, row.finished_at = "failed", message, utcnow()
            eventlog.record(session, staff.name, action, "failed", number=number, error=message)


def _message(exc: BaseException) -> str:
    if isinstance(exc, BrokerError):
        return f"{exc.code}: {exc.message}"
    if isinstance(exc, DeskError):
        return exc.text
    if isinstance(exc, OSError):
        return f"a file could not be read or written ({exc.strerror})"
    return str(exc)


def _logged(target: Callable[..., None]) -> Callable[..., None]:
    def run(*args: Any) -> None:
        try:
            target(*args)
        except Exception:  # a background task must not die silently
            log.exception("background work %s failed", threading.current_thread().name)

    return run


def _move_or_copy(source: Path, target: Path, incoming: Path) -> None:
    partial = target.with_suffix(".partial")
    if source.parent == incoming:
        source.replace(partial)
    else:
        shutil.copyfile(source, partial)
    partial.chmod(0o600)
    partial.replace(target)


class _Progress:
    """Writes a long task's stage and progress to its row, at most twice a second."""

    def __init__(self, desk: Desk, model: Any, number: int) -> None:
        self.desk, self.model, self.number = desk, model, number
        self.last = 0.0

    def update(self, stage: str, share: float, **values: Any) -> None:
        now = time.monotonic()
        if not values and now - self.last < _PROGRESS_SECONDS:
            return
        self.last = now
        with self.desk.db.transaction() as session:
            row = session.get(self.model, self.number)
            if row is not None:
                row.stage, row.progress = stage, round(min(max(share, 0.0), 1.0), 3)
                for name, value in values.items():
                    setattr(row, name, value)
