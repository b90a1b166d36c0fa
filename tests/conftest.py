"""The tests in tiers (docs/testing.md), their fixtures in tests/fixtures/:

- unit: pure code, no database (``tests/unit``, ``tests/tokens``, ``tests/audit``, ...);
- service: a domain's rules on a session rolled back at the end (``db_session``);
- API: the app in process through httpx's ASGI transport (``api``);
- end to end: what needs a process: real TLS (``server``), nginx, subprocesses, kill -9,
  the demo; marked ``slow``.

PostgreSQL is not optional. ``MATCHHUB_TEST_BACKENDS`` (default ``sqlite,postgresql``) names the
backends; when PostgreSQL is named and unreachable the run fails at once, and a run in which no
PostgreSQL test passed fails at the end, so a green run cannot hide skipped PostgreSQL tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from matchhub.agency.desk.accounts import PASSWORD_HASHING_ENV
from tests.fixtures.api import InProcessApi, api
from tests.fixtures.cli import operator_cli
from tests.fixtures.database import (
    BACKENDS,
    PG_ADMIN_URL,
    _service_databases,
    backend,
    database_url,
    db_session,
    finish_drops,
    service_database,
    templates,
)
from tests.fixtures.hub import Hub, hub
from tests.fixtures.server import RunningServer, server

# Property tests assert what is generated, never how fast: on a loaded 2-core machine (CI, or
# several test runs at once) a draw may take longer than Hypothesis's defaults allow, which says
# nothing about the code under test.
settings.register_profile("matchhub", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("matchhub")

# The fixtures, and the classes tests import from here as they always have.
__all__ = [
    "BACKENDS",
    "Hub",
    "InProcessApi",
    "RunningServer",
    "_service_databases",
    "api",
    "backend",
    "database_url",
    "db_session",
    "hub",
    "operator_cli",
    "server",
    "service_database",
    "templates",
]

_pg_passed = 0


def pytest_configure(config: pytest.Config) -> None:
    """The desk's passwords hashed with argon2-cffi's cheapest parameters, in this process and
    the desks it starts: RFC 9106's take ~0.1 s of both cores per hash or sign-in, minutes in
    all (docs/testing.md); tests/desk/test_units.py checks the default is RFC 9106's."""
    os.environ.setdefault(PASSWORD_HASHING_ENV, "test-only-cheapest")


_E2E = Path(__file__).parent / "e2e"
# The fixtures that start a real server: ``server``, and the desk's ``world`` (its own).
_SERVING = frozenset({"server", "world"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end tier is marked ``slow`` wherever it lives: tests/e2e, and any test with
    a real server (``make check`` runs ``-m "not slow"``)."""
    for item in items:
        if item.path.is_relative_to(_E2E) or not _SERVING.isdisjoint(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.slow)


def pytest_sessionstart(session: pytest.Session) -> None:
    if "postgresql" not in BACKENDS or hasattr(session.config, "workerinput"):
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
    if failed := finish_drops():  # every process: its tests' databases dropped, or the run fails
        session.exitstatus = 1
        print(f"\nFAILED: test databases not dropped: {failed}")
    # With pytest-xdist the workers' reports reach the controller, which alone decides.
    if hasattr(session.config, "workerinput"):
        return
    if "postgresql" in BACKENDS and exitstatus == 0 and session.testscollected and _pg_passed == 0:
        session.exitstatus = 1
        print("\nFAILED: PostgreSQL was required but no PostgreSQL test passed")
