"""``matchhub demo``: the story end to end on the embedded SQLite default.

It makes a fresh state folder, registers the agencies, starts the broker over real mutual TLS,
talks to it as each agency would, and stops everything it started.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from matchhub.connect.client import AgencyCredentials, make_client
from matchhub.keystore.service import initialise
from matchhub.kit.errors import OperatorError
from matchhub.runner import BrokerProcess
from matchhub.settings import Settings

DEMO_AGENCIES = [
    ("pension-authority", "pension", "National Pension Authority"),
    ("molsa", "welfare", "Ministry of Labour and Social Affairs"),
]


def _cli(home: Path, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "matchhub", "--home", str(home), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise OperatorError(f"`matchhub {' '.join(args)}` failed: {result.stderr.strip()}")


def prepare_home(home: Path) -> None:
    if home.exists():
        if not (home / "DEMO").exists():
            raise OperatorError(
                f"{home} exists and was not made by the demo; choose another --home"
            )
        shutil.rmtree(home)


def run_demo(home: Path, console: Console) -> None:
    prepare_home(home)
    console.rule("[bold]matchhub demo")
    initialise(Settings(home=home), demo=True)
    console.print(
        f"1. initialised the hub in [bold]{home.resolve()}[/]: CA, server "
        "certificate, broker key, audit signing key, migrated SQLite database"
    )
    agencies_dir = home / "agencies"
    for code, kind, name in DEMO_AGENCIES:
        _cli(
            home,
            "agency",
            "add",
            code,
            "--kind",
            kind,
            "--name",
            name,
            "--out",
            str(agencies_dir / code),
        )
    console.print(
        f"2. registered {len(DEMO_AGENCIES)} agencies; their certificates are in {agencies_dir}"
    )

    creds = {
        code: AgencyCredentials.in_folder(agencies_dir / code, code) for code, _, _ in DEMO_AGENCIES
    }
    with BrokerProcess(home, creds["molsa"]) as broker:
        console.print(f"3. broker serving {broker.url} (mutual TLS, client certificates required)")
        table = Table("agency", "kind", "scopes", title="GET /v1/whoami over mutual TLS")
        for code, _, _ in DEMO_AGENCIES:
            with make_client(broker.url, creds[code]) as client:
                response = client.get("/v1/whoami")
                response.raise_for_status()
                body = response.json()
                table.add_row(body["code"], body["kind"], ", ".join(body["scopes"]))
        console.print(table)
    console.print("4. broker stopped.")
    console.print(
        f"State: {home.resolve()} — `matchhub --home {home} agency list` shows "
        "the agencies; the broker's log is in broker.log there."
    )
