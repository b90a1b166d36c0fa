"""A desk on a real broker: the hub and its TLS server (tests/conftest.py), the partners'
connectors pushing a small synthetic population, and a desk home made by ``matchhub-desk
init``, its own tables on the same backend as the broker's."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from matchhub.agency.connector import cli as connect_cli
from matchhub.agency.desk import cli as desk_cli
from matchhub.agency.desk.app import create_app
from matchhub.agency.desk.config import DeskConfig
from matchhub.agency.desk.service import Desk
from matchhub.cli.processes import free_port
from matchhub.protocol.kinds import AgencyKind
from matchhub.protocol.tokens import MatchingKey, normalise
from matchhub.synth.extracts import generate
from tests.conftest import RunningServer

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


@pytest.fixture
def world(server: RunningServer, tmp_path: Path, database_url: str | None) -> DeskWorld:
    hub = server.hub
    key = hub.matching_key()
    key_file = tmp_path / "ceremony" / "matching-key.json"
    key_file.parent.mkdir()
    key.to_file(key_file)
    data = tmp_path / "data"
    generate(900, 11, data)
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    for code, kind in PROVIDERS:
        hub.add_agency(code, kind)
        _push(server, data, key_file, tmp_path / "connect", code=code, kind=kind)
    home = tmp_path / "desk"
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
    return DeskWorld(server, home, data, key_file)


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
