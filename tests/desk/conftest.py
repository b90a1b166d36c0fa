"""A desk on a real broker: the hub and its TLS server (tests/conftest.py), the partners'
connectors pushing a small synthetic population, and a desk home made by ``matchhub-desk
init``, its own tables on the same backend as the broker's."""

from __future__ import annotations

import csv
import io
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, sync_playwright

from matchhub.agency.connector import cli as connect_cli
from matchhub.agency.connector.client import AgencyCredentials
from matchhub.agency.desk import cli as desk_cli
from matchhub.agency.desk.app import create_app
from matchhub.agency.desk.config import CONFIG_FILE, DeskConfig
from matchhub.agency.desk.service import Desk
from matchhub.cli.processes import free_port
from matchhub.kit.settings import Settings
from matchhub.protocol.kinds import AgencyKind
from matchhub.protocol.tokens import MatchingKey, normalise
from matchhub.synth.extracts import generate
from tests.fixtures.database import Template, drop_database_later, terminate_connections
from tests.fixtures.hub import Hub
from tests.fixtures.server import RunningServer, running

REPO = Path(__file__).resolve().parents[2]
CONNECTORS = REPO / "connectors"
PASSWORD = "correct horse battery"
PROVIDERS = (
    ("pension-authority", "pension"),
    ("traffic-directorate", "traffic"),
    ("rafidain", "bank"),
    ("trade-ministry", "trade"),
    ("moe", "education"),
    ("mohesr", "higher_education"),
)
# The desk in a real browser: Debian's chromium, headless, through Playwright.
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "desk"  # screenshots
LAUNCH = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Staff names as the ministry writes them; none may ever reach the broker's log.
STAFF = {
    "sara.jabbar": "supervisor",
    "ali.hassan": "analyst",
    "huda.kareem": "caseworker",
    "omar.salih": "auditor",
}


@dataclass
class DeskWorld:
    server: RunningServer
    home: Path
    data: Path
    key_file: Path

    def desk(self) -> Desk:
        return Desk(DeskConfig.load(self.home))

    def cli(self, *args: str, stdin: str | None = None) -> int:
        return run_cli(self.home, *args, stdin=stdin)

    def truth(self) -> tuple[dict[str, set[str]], dict[str, str]]:
        """The synthetic ground truth in the ministry's terms: beneficiary ID → flags, and
        beneficiary ID → household ID, for everyone on the roster (from the extract)."""
        flags: dict[str, set[str]] = {}
        with (self.data / "truth.csv").open(encoding="utf-8") as file:
            for row in csv.DictReader(file):
                if row["on_roster"] == "1":
                    flags[row["national_id"]] = set(filter(None, row["flags"].split(";")))
        by_beneficiary: dict[str, set[str]] = {}
        households: dict[str, str] = {}
        with (self.data / "welfare.csv").open(encoding="utf-8-sig", newline="") as file:
            for row in csv.DictReader(file):
                try:
                    national = normalise(row["رقم البطاقة الوطنية"], "iq.ncn")
                except ValueError:
                    continue
                beneficiary = row["رقم المستفيد"]
                if national in flags and beneficiary not in by_beneficiary:
                    by_beneficiary[beneficiary] = flags[national]
                    households[beneficiary] = row["رقم الاستمارة"]
        return by_beneficiary, households


def run_cli(home: Path, *args: str, stdin: str | None = None) -> int:
    import sys  # noqa: PLC0415

    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        return desk_cli.run([*args, "--home", str(home)])
    finally:
        sys.stdin = saved


def _push(
    server: RunningServer, data: Path, key_file: Path, state: Path, *, code: str, kind: str
) -> None:
    creds = server.hub.credentials[code]
    status = connect_cli.run(
        [
            "push",
            "--definition",
            str(CONNECTORS / f"{kind}.toml"),
            "--extract",
            str(data / f"{kind}.csv"),
            "--matching-key",
            str(key_file),
            "--credentials",
            str(creds.certificate.parent),
            "--code",
            code,
            "--broker",
            server.url,
            "--state-dir",
            str(state),
            "--no-progress",
        ]
    )
    assert status == 0, f"the {kind} connector failed"


# A desk world's folders, each copied for a test, in the layout the tests have always had under
# their tmp_path.
_FOLDERS = ("state", "agencies", "ceremony", "data", "connect", "desk")


def _build(server: RunningServer, root: Path, database_url: str | None) -> None:
    """The pushes, ``matchhub-desk init`` and the staff accounts, on ``server``, in ``root``."""
    hub = server.hub
    key = hub.matching_key()
    key_file = root / "ceremony" / "matching-key.json"
    key_file.parent.mkdir()
    key.to_file(key_file)
    data = root / "data"
    generate(900, 11, data)
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    for code, kind in PROVIDERS:
        hub.add_agency(code, kind)
        _push(server, data, key_file, root / "connect", code=code, kind=kind)
    home = root / "desk"
    args = [
        "init",
        "--broker",
        server.url,
        "--credentials",
        str(molsa.certificate.parent),
        "--code",
        "molsa",
        "--matching-key",
        str(key_file),
        "--definition",
        str(CONNECTORS / "welfare.toml"),
        "--extract",
        str(data / "welfare.csv"),
    ]
    if database_url is not None:
        args += ["--database-url", database_url]
    assert run_cli(home, *args) == 0
    for name, role in STAFF.items():
        assert (
            run_cli(
                home, "user", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD + "\n"
            )
            == 0
        )


@dataclass(frozen=True)
class _WorldTemplate:
    """A desk world built once, to be cloned: its folders (``_FOLDERS``) under ``root`` and, on
    PostgreSQL, the database holding the broker's tables and the desk's."""

    root: Path
    hub: Template
    broker_url: str


@pytest.fixture(scope="session")
def _world_templates(
    templates: dict[str, Template], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, _WorldTemplate]]:
    """One desk world per backend per test process, built when a test first needs it, as
    ``world`` always built it: on a hub cloned from the backend's template, served for the
    pushes and ``init`` and stopped."""
    made: dict[str, _WorldTemplate] = {}

    class _Lazy(dict[str, _WorldTemplate]):
        def __missing__(self, backend: str) -> _WorldTemplate:
            root = tmp_path_factory.mktemp(f"desk-world-{backend}")
            url = templates[backend].clone(root / "state")
            hub = Hub(Settings(home=root / "state", database_url=url), root / "agencies")
            with running(hub) as server:
                _build(server, root, url)
                broker_url = server.url
            if url is not None:  # no connection may be left on a template database
                terminate_connections(url)
            made[backend] = self[backend] = _WorldTemplate(
                root, Template(backend, root / "state", url), broker_url
            )
            return self[backend]

    yield _Lazy()
    for template in made.values():
        template.hub.discard()


@pytest.fixture
def world(
    request: pytest.FixtureRequest,
    backend: str,
    tmp_path: Path,
    _world_templates: dict[str, _WorldTemplate],
) -> Iterator[DeskWorld]:
    """A desk world of its own: a copy of the backend's built one (folders and database), with
    its own broker server on the copy, and the desk's settings pointing at both. The copy has
    the default settings: a test needing others builds its own hub (``server``)."""
    if request.node.get_closest_marker("settings") is not None:
        pytest.fail("`world` is a copy made with the default settings: use `server` instead")
    template = _world_templates[backend]
    for folder in _FOLDERS[1:]:
        shutil.copytree(template.root / folder, tmp_path / folder)
    url = template.hub.clone(tmp_path / "state")
    hub = Hub(Settings(home=tmp_path / "state", database_url=url), tmp_path / "agencies")
    for folder in sorted((tmp_path / "agencies").iterdir()):
        hub.credentials[folder.name] = AgencyCredentials.in_folder(folder, folder.name)
    home = tmp_path / "desk"
    try:
        with running(hub) as server:
            config = home / CONFIG_FILE
            text = config.read_text(encoding="utf-8")
            text = text.replace(f'broker = "{template.broker_url}"', f'broker = "{server.url}"')
            if url is not None:
                assert template.hub.database_url is not None
                text = text.replace(
                    f'database_url = "{template.hub.database_url}"', f'database_url = "{url}"'
                )
            config.write_text(text, encoding="utf-8")
            loaded = DeskConfig.load(home)
            assert (loaded.broker, loaded.database_url) == (
                server.url,
                url or f"sqlite:///{home.resolve() / 'desk.db'}",
            )
            yield DeskWorld(
                server, home, tmp_path / "data", tmp_path / "ceremony" / "matching-key.json"
            )
    finally:
        if url is not None:
            drop_database_later(url)


@pytest.fixture(scope="session")
def _chromium() -> Iterator[Browser]:
    """One headless chromium per test process: launching it is seconds of both cores."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: scripts/ensure-services installs it")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browser(_chromium: Browser) -> Iterator[Browser]:
    """The process's chromium; a test's pages are in contexts of their own (Playwright gives
    each context a fresh profile: no cookie, storage or cache of another test's), every one
    closed at the end of the test."""
    yield _chromium
    for context in _chromium.contexts:
        context.close()


def key_of(world: DeskWorld) -> MatchingKey:
    return MatchingKey.from_file(world.key_file)


@contextmanager
def serving(desk: Desk) -> Iterator[str]:
    """The desk's app on a real uvicorn on 127.0.0.1, in a thread; yields its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(desk), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="desk", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the desk did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
