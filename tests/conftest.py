"""Fixtures: a real database per test (SQLite file or a fresh PostgreSQL database), a real hub
state folder made by ``matchhub init``'s own code, and a real uvicorn server with TLS.

PostgreSQL is not optional. ``MATCHHUB_TEST_BACKENDS`` (default ``sqlite,postgresql``) names the
backends; when PostgreSQL is named and unreachable the run fails at once, and a run in which no
PostgreSQL test passed fails at the end, so a green run cannot hide skipped PostgreSQL tests.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from matchhub.agency.connector.client import AgencyCredentials
from matchhub.cli import bootstrap
from matchhub.cli.processes import free_port
from matchhub.identity import service as identity
from matchhub.keystore import pki
from matchhub.keystore import service as keystore
from matchhub.kit.db import make_engine, make_sessionmaker, session_scope
from matchhub.kit.settings import Settings
from matchhub.protocol.kinds import AgencyKind
from matchhub.protocol.tokens import MatchingKey
from matchhub.web.server import build_server
from tests.pki import write_credentials

BACKENDS = [
    b.strip()
    for b in os.environ.get("MATCHHUB_TEST_BACKENDS", "sqlite,postgresql").split(",")
    if b.strip()
]
PG_ADMIN_URL = os.environ.get(
    "MATCHHUB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
RUN_ID = secrets.token_hex(3)
_counter = itertools.count()
_pg_passed = 0


def pytest_sessionstart(session: pytest.Session) -> None:
    if "postgresql" not in BACKENDS:
        return
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        pytest.exit(
            f"PostgreSQL at {make_url(PG_ADMIN_URL).render_as_string()} is unreachable ({exc}); "
            "start it (pg_ctlcluster --skip-systemctl-redirect 15 main start) or set "
            "MATCHHUB_TEST_BACKENDS=sqlite deliberately",
            returncode=3,
        )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _pg_passed  # noqa: PLW0603 (a session-wide tally, read once at the end)
    if report.when == "call" and report.passed and "postgresql" in report.nodeid:
        _pg_passed += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if "postgresql" in BACKENDS and exitstatus == 0 and session.testscollected and _pg_passed == 0:
        session.exitstatus = 1
        print("\nFAILED: PostgreSQL was required but no PostgreSQL test passed")


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """``None`` is the embedded default: a SQLite file in the state folder."""
    if request.param == "sqlite":
        yield None
        return
    name = f"matchhub_t_{RUN_ID}_{next(_counter)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Hub:
    """A hub made by the same code as ``matchhub init``, with helpers for agencies."""

    settings: Settings
    agencies_dir: Path
    credentials: dict[str, AgencyCredentials] = field(default_factory=dict)

    @property
    def paths(self):  # type: ignore[no-untyped-def]
        return self.settings.paths

    @property
    def ca(self) -> pki.Issued:
        return keystore.load_ca(self.paths)

    @property
    def ca_pem(self) -> bytes:
        return self.paths.ca_cert.read_bytes()

    def session(self):  # type: ignore[no-untyped-def]
        engine = make_engine(self.settings.sqlalchemy_url)
        return _EngineSession(engine)

    def add_agency(
        self, code: str, kind: AgencyKind | str, name: str | None = None
    ) -> AgencyCredentials:
        with self.session() as session:
            issued = identity.register_agency(
                session,
                self.ca,
                self.settings.hub_name,
                code=code,
                kind=AgencyKind(kind),
                name=name or f"TEST-ONLY {code}",
            )
        creds = write_credentials(self.agencies_dir / code, code, issued, self.ca_pem)
        self.credentials[code] = creds
        return creds

    def register_certificate(self, code: str, issued: pki.Issued, label: str) -> AgencyCredentials:
        """Record an extra certificate for an existing agency (e.g. one the TLS layer refuses)."""
        with self.session() as session:
            agency = identity.IdentityRepository(session).agency_by_code(code)
            assert agency is not None
            identity.record_certificate(session, agency, issued.certificate)
        return write_credentials(self.agencies_dir / label, label, issued, self.ca_pem)

    def matching_key(self) -> MatchingKey:
        """A matching-key version as the key ceremony makes it: the test keeps the key, the
        broker records only its version id."""
        with self.session() as session:
            version = keystore.register_matching_key_version(session)
        return MatchingKey.generate(version)

    def revoke(self, code: str) -> None:
        with self.session() as session:
            identity.revoke_agency(session, code)
            identity.publish_crl(session, self.paths)


class _EngineSession:
    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.engine = engine
        self._scope = session_scope(make_sessionmaker(engine))

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self._scope.__enter__()

    def __exit__(self, *exc):  # type: ignore[no-untyped-def]
        try:
            return self._scope.__exit__(*exc)
        finally:
            self.engine.dispose()


@pytest.fixture
def hub(request: pytest.FixtureRequest, tmp_path: Path, database_url: str | None) -> Hub:
    """``@pytest.mark.settings(name=value, ...)`` on a test overrides settings for its hub."""
    marker = request.node.get_closest_marker("settings")
    overrides = dict(marker.kwargs) if marker else {}
    settings = Settings(home=tmp_path / "state", database_url=database_url, **overrides)
    bootstrap.initialise(settings)
    return Hub(settings=settings, agencies_dir=tmp_path / "agencies")


@dataclass
class RunningServer:
    url: str
    hub: Hub


@pytest.fixture
def server(hub: Hub) -> Iterator[RunningServer]:
    """The real server (``matchhub serve``'s own builder) on 127.0.0.1, in a thread."""
    port = free_port()
    uv = build_server(hub.settings, port=port)
    thread = threading.Thread(target=uv.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield RunningServer(url=f"https://127.0.0.1:{port}", hub=hub)
    finally:
        uv.should_exit = True
        thread.join(timeout=20)
