"""A real hub for a figure: a PostgreSQL database the benchmark creates and drops
(``matchhub_bench_<run>_<figure>``), a state folder made by ``matchhub init``'s own code,
agencies registered by the registry's own code, and ``matchhub serve`` in its own process."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from benchmarks.measure import peak_rss_mib
from matchhub.agency.connector.client import AgencyCredentials
from matchhub.cli import bootstrap
from matchhub.cli.processes import BrokerProcess
from matchhub.identity import service as identity
from matchhub.keystore import service as keystore
from matchhub.kit.db import make_engine, make_sessionmaker, session_scope
from matchhub.kit.settings import Settings
from matchhub.protocol.kinds import AgencyKind

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RUN_ID = secrets.token_hex(3)
CREATED: list[str] = []  # every database this run made (and drops), for the JSON

# The lookup rate limit is a policy against using the broker as an oracle, not a capacity: the
# benchmarks measure capacity, so every broker they start lifts it.
BROKER_ENV = {
    "MATCHHUB_LOOKUP_RATE_PER_SECOND": "1000000000",
    "MATCHHUB_LOOKUP_BURST": "1000000000",
}


def libpq_url(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://...`` → the ``postgresql://...`` libpq (psycopg) understands."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(False)


def postgres_version(admin_url: str) -> str:
    with psycopg.connect(libpq_url(admin_url)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


@dataclass
class Broker:
    """A running ``matchhub serve`` child and what was measured of it."""

    process: BrokerProcess
    profile: subprocess.Popen[bytes] | None = None
    peak_mib: float | None = None  # VmHWM, read just before it is stopped

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def pid(self) -> int:
        assert self.process.process is not None
        return self.process.process.pid


@dataclass
class BenchHub:
    label: str
    root: Path
    admin_url: str
    profile_dir: Path | None = None
    settings: Settings | None = None
    credentials: dict[str, AgencyCredentials] = field(default_factory=dict)
    peaks: list[float] = field(default_factory=list)
    database: str = ""
    _brokers: int = 0

    @property
    def url(self) -> str:
        return make_url(self.admin_url).set(database=self.database).render_as_string(False)

    @property
    def libpq(self) -> str:
        return libpq_url(self.url)

    def create(self) -> BenchHub:
        self.database = f"matchhub_bench_{RUN_ID}_{self.label}_{secrets.token_hex(2)}"
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.database}"'))
            CREATED.append(self.database)
        finally:
            admin.dispose()
        home = self.root / self.label / "state"
        self.settings = Settings(home=home, database_url=self.url)
        bootstrap.initialise(self.settings)
        return self

    def drop(self) -> None:
        if not self.database:
            return
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
        finally:
            admin.dispose()
        shutil.rmtree(self.root / self.label, ignore_errors=True)
        self.database = ""

    def __enter__(self) -> BenchHub:
        return self.create()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and exc_type is not KeyboardInterrupt:
            sys.stderr.write(f"--- the {self.label} broker's log, last lines ---\n")
            sys.stderr.write(self.broker_log() + "\n")
        self.drop()

    # --- registry ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        assert self.settings is not None
        engine = make_engine(self.settings.sqlalchemy_url)
        try:
            with session_scope(make_sessionmaker(engine)) as session:
                yield session
        finally:
            engine.dispose()

    def agency(self, code: str, kind: AgencyKind) -> AgencyCredentials:
        """Register an agency as ``matchhub agency add`` does; its files go under the hub."""
        assert self.settings is not None
        ca = keystore.load_ca(self.settings.paths)
        with self.session() as session:
            issued = identity.register_agency(
                session,
                ca,
                self.settings.hub_name,
                code=code,
                kind=kind,
                name=f"BENCHMARK {code}",
            )
        out = self.root / self.label / "agencies" / code
        out.mkdir(parents=True, exist_ok=True)
        bootstrap.write_agency_files(out, code, issued, self.settings.paths.ca_cert.read_bytes())
        creds = AgencyCredentials.in_folder(out, code)
        self.credentials[code] = creds
        return creds

    def matching_key_version(self) -> str:
        with self.session() as session:
            return keystore.register_matching_key_version(session)

    # --- the broker --------------------------------------------------------------------------

    @contextlib.contextmanager
    def broker(self, env: dict[str, str] | None = None) -> Iterator[Broker]:
        """``matchhub serve`` in its own process; its VmHWM is recorded when it stops."""
        assert self.settings is not None
        probe = next(iter(self.credentials.values()))
        self._brokers += 1
        process = BrokerProcess(
            self.settings.home,
            probe,
            env={"MATCHHUB_DATABASE_URL": self.url, **BROKER_ENV, **(env or {})},
            log=self.root / self.label / f"broker-{self._brokers}.log",
        )
        process.start(timeout=60)
        broker = Broker(process)
        try:
            if self.profile_dir is not None:
                broker.profile = _start_profiler(
                    broker.pid, self.profile_dir / f"{self.label}-{self._brokers}.txt"
                )
            yield broker
        finally:
            _stop_profiler(broker.profile)
            broker.peak_mib = peak_rss_mib(broker.pid)
            if broker.peak_mib is not None:
                self.peaks.append(broker.peak_mib)
            process.stop()

    def broker_log(self) -> str:
        logs = sorted((self.root / self.label).glob("broker-*.log"))
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in logs)

    # --- the database, directly ----------------------------------------------------------------

    def wait_for_purge(self, timeout: float = 600.0) -> None:
        """Wait until the broker has purged every replaced snapshot's rows, then VACUUM, so the
        next measured push starts from the same state."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.libpq, autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FROM snapshots WHERE state IN ('superseded', 'discarded')"
                ).fetchone()
                if row is not None and row[0] == 0:
                    break
                time.sleep(0.2)
            else:
                raise TimeoutError("the broker did not purge replaced snapshots in time")
            conn.execute("VACUUM (ANALYZE) snapshot_rows")
            conn.execute("CHECKPOINT")


def _start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy, if installed, samples the broker into a collapsed-stack file (``--profile``)."""
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "97"]
    command += ["--nonblocking", "--output", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is None or profiler.poll() is not None:
        return
    profiler.send_signal(signal.SIGINT)
    try:
        profiler.wait(timeout=30)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.wait()
