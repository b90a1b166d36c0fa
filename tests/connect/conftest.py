"""Connector tests: a real broker (``server``), registered agencies, a matching-key file, and
``matchhub-connect`` run in-process (or as a subprocess where a test kills it)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from matchhub.agency.connector.cli import run
from matchhub.keystore.material import load_key_material
from matchhub.keystore.rekey import Rekeyer
from matchhub.protocol.tokens import MatchingKey, Tokeniser
from matchhub.synth.extracts import generate
from matchhub.uploads.models import Snapshot, SnapshotState, Upload, roster_rows
from tests.conftest import Hub, RunningServer
from tests.e2e.helpers import visible_flags

ROOT = Path(__file__).resolve().parents[2]
CONNECTORS = ROOT / "connectors"
KINDS = ("welfare", "pension", "traffic", "bank", "trade", "education", "higher_education")
CODES = {
    "welfare": "molsa",
    "pension": "pension-authority",
    "traffic": "traffic-directorate",
    "bank": "rafidain",
    "trade": "trade-ministry",
    "education": "moe",
    "higher_education": "mohesr",
}


@dataclass
class Outcome:
    """One ``matchhub-connect`` run: exit status, what it printed, its report.json."""

    status: int
    out: str
    err: str
    report: dict[str, Any]

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass
class Agencies:
    """A running broker with the seven agencies registered and a matching key handed out."""

    server: RunningServer
    key: MatchingKey
    key_file: Path
    work: Path

    @property
    def hub(self) -> Hub:
        return self.server.hub

    def credentials(self, kind: str) -> Path:
        return self.hub.credentials[CODES[kind]].certificate.parent

    def args(self, kind: str, extract: Path, *extra: str, name: str | None = None) -> list[str]:
        """The push command line of the agency of `kind`; `name` separates the outputs."""
        return [
            "push",
            "--definition",
            str(CONNECTORS / f"{kind}.toml"),
            "--extract",
            str(extract),
            "--matching-key",
            str(self.key_file),
            "--credentials",
            str(self.credentials(kind)),
            "--code",
            CODES[kind],
            "--broker",
            self.server.url,
            "--state-dir",
            str(self.work / "state"),
            "--out",
            str(self.out(name or kind)),
            "--no-progress",
            *extra,
        ]

    def out(self, name: str) -> Path:
        return self.work / "out" / name

    def push(
        self,
        capsys: pytest.CaptureFixture[str],
        kind: str,
        extract: Path,
        *extra: str,
        name: str | None = None,
    ) -> Outcome:
        return connect(capsys, self.args(kind, extract, *extra, name=name), self.out(name or kind))

    def killed_after(
        self, chunks: int, kind: str, extract: Path, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        """``matchhub-connect push`` in a subprocess, killed (SIGKILL) once the broker has
        received ``chunks`` chunks (tests/connect/killed_push.py)."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.connect.killed_push",
                str(chunks),
                *self.args(kind, extract, *extra),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            cwd=Path(__file__).parents[2],
        )


def connect(capsys: pytest.CaptureFixture[str], argv: list[str], out: Path | None) -> Outcome:
    """Run ``matchhub-connect argv`` in this process."""
    capsys.readouterr()
    status = run(argv)
    captured = capsys.readouterr()
    report_file = out / "report.json" if out else None
    report = json.loads(report_file.read_text()) if report_file and report_file.exists() else {}
    return Outcome(status, captured.out, captured.err, report)


@pytest.fixture
def agencies(server: RunningServer, tmp_path: Path) -> Agencies:
    hub = server.hub
    for kind, code in CODES.items():
        hub.add_agency(code, kind)
    key = hub.matching_key()
    key_file = tmp_path / "matching-key.json"
    key.to_file(key_file)
    return Agencies(server, key, key_file, tmp_path)


@pytest.fixture(scope="session")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic population with every extract and the truth, made once per run."""
    folder = tmp_path_factory.mktemp("synthetic")
    generate(800, 2025, folder)
    return folder


def truth(folder: Path) -> tuple[dict[str, set[str]], set[str]]:
    """(ID → flags for every flagged person, the roster's IDs) from a generator's truth.csv."""
    flagged: dict[str, set[str]] = {}
    roster: set[str] = set()
    for line in (folder / "truth.csv").read_text().splitlines()[1:]:
        national_id, on_roster, flags = line.split(",")
        if flags:
            flagged[national_id] = set(flags.split(";"))
        if on_roster == "1":
            roster.add(national_id)
    return flagged, roster


class Broker:
    """What the broker holds, in terms of stored (re-keyed) tokens."""

    def __init__(self, hub: Hub, key: MatchingKey) -> None:
        self.hub = hub
        self.tokeniser = Tokeniser(key, "iq.ncn")
        self.rekeyer = Rekeyer(load_key_material(hub.paths).broker_key.value)

    def stored(self, national_id: str) -> bytes:
        return self.rekeyer.rekey(self.tokeniser.token_bytes(national_id))

    def expected(self, flagged: dict[str, set[str]]) -> dict[bytes, set[tuple[str, str]]]:
        """The visible flags a broker holds when every provider pushed exactly `flagged`."""
        return {
            self.stored(national_id): {(CODES[flag.split(".")[0]], flag) for flag in flags}
            for national_id, flags in flagged.items()
        }

    def flags(self) -> dict[bytes, set[tuple[str, str]]]:
        return visible_flags(self.hub)

    def roster(self) -> set[bytes]:
        """Stored tokens of the current roster."""
        with self.hub.session() as session:
            rows = session.execute(
                select(roster_rows.c.token)
                .join(Snapshot, Snapshot.id == roster_rows.c.snapshot_id)
                .where(Snapshot.state == SnapshotState.current, Snapshot.kind == "roster")
            ).all()
        return {bytes(token) for (token,) in rows}

    def uploads(self) -> list[tuple[str, str, int, int]]:
        """(id, state, rows received, chunks received) of every upload, oldest first."""
        with self.hub.session() as session:
            rows = session.execute(
                select(
                    Upload.id, Upload.state, Upload.rows_received, Upload.chunks_received
                ).order_by(Upload.created_at, Upload.id)
            ).all()
        return [(str(a), str(b), int(c), int(d)) for a, b, c, d in rows]

    def snapshot(self) -> tuple[object, ...]:
        """Everything a bad push must leave untouched."""
        return (self.uploads(), self.flags(), self.roster())


@pytest.fixture
def broker(agencies: Agencies) -> Broker:
    return Broker(agencies.hub, agencies.key)
