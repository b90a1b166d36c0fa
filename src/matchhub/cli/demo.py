"""``matchhub demo``: the whole story, end to end, on the embedded SQLite default.

A fresh state folder; the hub initialised; six partner agencies, the ministry and an auditor
registered; a matching key made for the key ceremony; a synthetic population with each agency's
extract; every connector run over real mutual TLS; one collective match job; three lookups; the
audit log exported and verified offline. Everything it starts, it stops. It checks its own
answer against the synthetic ground truth and says whether they are equal.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from matchhub.agency.connector import cli as connect_cli
from matchhub.agency.connector.client import AgencyCredentials, make_client
from matchhub.cli.processes import BrokerProcess
from matchhub.kit.errors import OperatorError
from matchhub.protocol.catalogue import FLAGS
from matchhub.protocol.tokens import MatchingKey, Tokeniser
from matchhub.synth.extracts import generate

CONNECTORS = Path(__file__).resolve().parents[3] / "connectors"

# (code, kind, name, connector definition); the welfare roster goes first.
AGENCIES: tuple[tuple[str, str, str], ...] = (
    ("molsa", "welfare", "Ministry of Labour and Social Affairs"),
    ("pension-authority", "pension", "National Retirement Authority"),
    ("traffic-directorate", "traffic", "General Traffic Directorate"),
    ("rafidain", "bank", "Rafidain Bank"),
    ("trade-ministry", "trade", "Ministry of Trade"),
    ("moe", "education", "Ministry of Education"),
    ("mohesr", "higher_education", "Ministry of Higher Education and Scientific Research"),
    ("audit-board", "auditor", "Federal Board of Supreme Audit"),
)
PURPOSE = "eligibility_review"
LABELS = {spec.code: (spec.label_en, spec.label_ar) for spec in FLAGS}


@dataclass
class DemoResult:
    home: Path
    people: int
    roster: int
    summary: dict[str, Any]
    matches_truth: bool
    flagged_tokens: set[str] = field(default_factory=set)
    expected_tokens: set[str] = field(default_factory=set)
    seconds: float = 0.0


def _operator(home: Path, *args: str) -> None:
    """One `matchhub` operator command, run in this process exactly as the CLI runs it."""
    from matchhub.cli.main import app  # noqa: PLC0415 (the CLI module imports this one)

    command = typer.main.get_command(app)
    try:
        command.main(["--home", str(home), *args], prog_name="matchhub", standalone_mode=False)
    except SystemExit as exc:  # pragma: no cover (typer exits only on usage errors)
        raise OperatorError(f"`matchhub {' '.join(args)}` failed ({exc.code})") from None


def prepare_home(home: Path) -> None:
    if home.exists():
        if not (home / "DEMO").exists():
            raise OperatorError(
                f"{home} exists and was not made by the demo; choose another --home"
            )
        shutil.rmtree(home)


def _connect(console: Console, broker: str, home: Path, *, code: str, kind: str, key: Path) -> None:
    out = home / "connectors" / code
    status = connect_cli.run(
        [
            "push",
            "--definition",
            str(CONNECTORS / f"{kind}.toml"),
            "--extract",
            str(home / "data" / f"{kind}.csv"),
            "--matching-key",
            str(key),
            "--credentials",
            str(home / "agencies" / code),
            "--code",
            code,
            "--broker",
            broker,
            "--state-dir",
            str(home / "connectors" / "state"),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    if status != 0:
        raise OperatorError(f"the {kind} connector failed; see {out}")
    report = json.loads((out / "report.json").read_text())
    rejected = sum(report["rejected"].values())
    console.print(
        f"   {kind:<17} {code:<20} {report['rows_read']:>8,} rows read, "
        f"{report['rows_sent']:>8,} sent, {rejected:>4} rejected, {report['seconds']:.1f} s"
    )


def _truth(data: Path, key: MatchingKey) -> tuple[dict[str, set[str]], list[str]]:
    """Roster members' wire tokens → the flags the rules imply, and the roster's IDs."""
    tokeniser = Tokeniser(key, "iq.ncn")
    flagged: dict[str, set[str]] = {}
    roster: list[str] = []
    with (data / "truth.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["on_roster"] != "1":
                continue
            roster.append(row["national_id"])
            if row["flags"]:
                flagged[tokeniser.token(row["national_id"])] = set(row["flags"].split(";"))
    return flagged, roster


def _wait(client: httpx.Client, job_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/match-jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise OperatorError(f"the match job did not finish in {timeout:.0f} s")


def _summary_table(summary: dict[str, Any]) -> Table:
    table = Table(
        "flag",
        "English",
        "العربية",
        "source",
        "flagged beneficiaries",
        title=f"Collective match: {summary['flagged_beneficiaries']:,} of "
        f"{summary['roster_size']:,} beneficiaries flagged",
    )
    sources = {s["flag"]: s["source"] for s in summary["sources"]}
    for code, (english, arabic) in LABELS.items():
        table.add_row(
            code, english, arabic, sources.get(code, "-"), f"{summary['per_flag'].get(code, 0):,}"
        )
    return table


def _names(data: Path, ids: Sequence[str]) -> dict[str, str]:
    wanted, names = set(ids), {}
    with (data / "population.csv").open(encoding="utf-8") as f:
        for row in csv.reader(f):
            if row and row[0] in wanted:
                names[row[0]] = " ".join(row[5:9])
    return names


@dataclass
class _Setup:
    key_file: Path
    key: MatchingKey
    data: Path
    truth: dict[str, Any]
    creds: dict[str, AgencyCredentials]


def _set_up(home: Path, console: Console, people: int, seed: int) -> _Setup:
    from matchhub.cli.bootstrap import initialise  # noqa: PLC0415
    from matchhub.kit.settings import Settings  # noqa: PLC0415

    initialise(Settings(home=home), demo=True)
    console.print(
        f"1. hub initialised in [bold]{home.resolve()}[/]: CA, server certificate, "
        "broker key, audit keys, migrated SQLite database, seeded flag catalogue"
    )
    for code, kind, name in AGENCIES:
        _operator(
            home,
            "agency",
            "add",
            code,
            "--kind",
            kind,
            "--name",
            name,
            "--out",
            str(home / "agencies" / code),
        )
    console.print(
        f"2. registered {len(AGENCIES)} agencies (six partners, the ministry, an "
        f"auditor); certificates in {home / 'agencies'}"
    )
    key_file = home / "ceremony" / "matching-key.json"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    _operator(home, "keys", "matching-key", "--out", str(key_file))
    key = MatchingKey.from_file(key_file)
    console.print(
        f"3. key ceremony: matching key {key.version} in {key_file}, for the "
        "agencies' connectors only (the broker keeps only its version id)"
    )
    data = home / "data"
    truth = generate(people, seed, data)
    console.print(
        f"4. synthetic population of {people:,} ({truth['roster']:,} beneficiaries) "
        f"and each agency's extract in {data}"
    )
    creds = {
        code: AgencyCredentials.in_folder(home / "agencies" / code, code) for code, _, _ in AGENCIES
    }
    return _Setup(key_file, key, data, truth, creds)


def _match(console: Console, client: httpx.Client) -> tuple[dict[str, Any], dict[str, set[str]]]:
    opened = client.post("/v1/match-jobs", json={"purpose": PURPOSE})
    if opened.status_code != 201:
        raise OperatorError(f"the match job was refused: {opened.text}")
    job = _wait(client, opened.json()["id"])
    if job["state"] != "succeeded":
        raise OperatorError(f"the match job failed: {job['reason']}")
    lines = client.get(f"/v1/match-jobs/{job['id']}/results").text.splitlines()
    results = {item["token"]: {f["code"] for f in item["flags"]} for item in map(json.loads, lines)}
    summary: dict[str, Any] = job["summary"]
    console.print(
        f"6. collective match job over roster version {summary['roster_version']} "
        f"against every partner at once: {summary['seconds']:.2f} s"
    )
    console.print(_summary_table(summary))
    console.print(
        "   per source: " + ", ".join(f"{kind} {n:,}" for kind, n in summary["per_source"].items())
    )
    return summary, results


def _lookups(
    console: Console,
    client: httpx.Client,
    setup: _Setup,
    roster: list[str],
    expected: dict[str, set[str]],
) -> None:
    tokeniser = Tokeniser(setup.key, "iq.ncn")
    flagged_ids = [i for i in roster if tokeniser.token(i) in expected]
    picks = sorted(flagged_ids, key=lambda i: -len(expected[tokeniser.token(i)]))[:2]
    picks += [i for i in roster if tokeniser.token(i) not in expected][:1]
    names = _names(setup.data, picks)
    answer = client.post(
        "/v1/lookups", json={"purpose": PURPOSE, "tokens": [tokeniser.token(i) for i in picks]}
    ).json()
    console.print(
        "7. a case worker looks up three beneficiaries (the ministry's client hashes "
        "their IDs; the broker sees tokens):"
    )
    for national_id, item in zip(picks, answer["results"], strict=True):
        flags = (
            ", ".join(f"{f['code']} ({f['source']}, {f['as_of']})" for f in item["flags"])
            or "no flags"
        )
        console.print(f"   {names.get(national_id, '?')}: {flags}")


def run_demo(home: Path, console: Console, *, people: int = 20_000, seed: int = 2026) -> DemoResult:
    started = time.monotonic()
    prepare_home(home)
    console.rule("[bold]matchhub demo")
    setup = _set_up(home, console, people, seed)
    auditor = home / "auditor"
    auditor.mkdir(parents=True, exist_ok=True)
    with BrokerProcess(home, setup.creds["molsa"]) as broker:
        console.print(
            f"5. broker serving {broker.url} (mutual TLS, client certificates "
            "required); each connector hashes its IDs locally and pushes only "
            "tokens and flag codes:"
        )
        for code, kind, _ in AGENCIES[:-1]:
            _connect(console, broker.url, home, code=code, kind=kind, key=setup.key_file)
        with make_client(broker.url, setup.creds["molsa"]) as client:
            summary, results = _match(console, client)
            expected, roster = _truth(setup.data, setup.key)
            matches = results == expected
            console.print(
                f"   equal to the synthetic ground truth: "
                f"{'[green]yes[/]' if matches else '[red]NO[/]'}"
            )
            _lookups(console, client, setup, roster, expected)
        with make_client(broker.url, setup.creds["audit-board"]) as client:
            checkpoint = client.get("/v1/audit/checkpoint").json()
        (auditor / "verifier.key").write_text(checkpoint["verifier_key"] + "\n")
        (auditor / "checkpoint.note").write_text(checkpoint["note"])
    console.print("8. broker stopped.")
    _operator(home, "audit", "export", "--out", str(auditor / "export"))
    _operator(
        home,
        "audit",
        "verify",
        "--export",
        str(auditor / "export"),
        "--key",
        str(auditor / "verifier.key"),
        "--checkpoint",
        str(auditor / "checkpoint.note"),
    )
    console.print(
        f"9. the auditor exported the audit log and verified it offline against "
        f"the checkpoint it saved ({checkpoint['size']:,} entries at the time)"
    )
    seconds = time.monotonic() - started
    console.print(
        f"Done in {seconds:.0f} s. State: {home.resolve()}\n"
        f"  matchhub --home {home} agency list             the agencies\n"
        f"  matchhub --home {home} audit export --out DIR  the audit log\n"
        f"  {home / 'connectors'}  each connector's report and rejected rows\n"
        f"  {home / 'broker.log'}  the broker's log"
    )
    return DemoResult(
        home=home,
        people=people,
        roster=setup.truth["roster"],
        summary=summary,
        matches_truth=matches,
        flagged_tokens=set(results),
        expected_tokens=set(expected),
        seconds=seconds,
    )
