"""``matchhub demo``: the whole story, end to end, on the embedded SQLite default.

A fresh state folder; the hub initialised; six partner agencies, the ministry and an auditor
registered; a matching key made for the key ceremony; a synthetic population with each agency's
extract; every partner's connector run over real mutual TLS; the ministry's side played by its
desk (``matchhub-desk``, as named staff): the roster registered, one collective match turned
into the ministry's beneficiary and household lists, three lookups; the audit log exported and
verified offline. Everything it starts, it stops, and it leaves the desk's home ready to serve.
It checks the desk's list against the synthetic ground truth and says whether they are equal.
"""

from __future__ import annotations

import contextlib
import csv
import json
import secrets
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from matchhub.agency.connector import cli as connect_cli
from matchhub.agency.connector.client import AgencyCredentials, make_client
from matchhub.cli.processes import BrokerProcess, free_port
from matchhub.kit.errors import OperatorError
from matchhub.protocol.catalogue import FLAGS
from matchhub.protocol.tokens import InvalidIdentifier, MatchingKey, normalise
from matchhub.synth.extracts import generate

# The sample agencies' connector definitions: the copy a wheel carries (pyproject.toml's
# force-include), else the checkout's connectors/ (an editable install, the tests).
_PACKAGED = Path(__file__).resolve().parents[1] / "sample_connectors"
CONNECTORS = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parents[3] / "connectors"

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
BROKER_PORT = 8443
DESK_PORT = 8600
# The ministry's staff the demo makes at its desk (user name, role).
STAFF = (("supervisor", "supervisor"), ("analyst", "analyst"), ("caseworker", "caseworker"))


@dataclass
class DemoResult:
    home: Path
    people: int
    roster: int
    summary: dict[str, Any]
    matches_truth: bool
    flagged: dict[str, set[str]] = field(default_factory=dict)
    """The desk's list: beneficiary ID → flags."""
    expected: dict[str, set[str]] = field(default_factory=dict)
    """The synthetic ground truth, in the same terms."""
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


def _truth(data: Path) -> dict[str, set[str]]:
    """The ground truth in the ministry's terms: each flagged beneficiary's ID (from the
    roster extract) → the flags the rules imply (from truth.csv)."""
    flags: dict[str, set[str]] = {}
    with (data / "truth.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["on_roster"] == "1" and row["flags"]:
                flags[row["national_id"]] = set(row["flags"].split(";"))
    expected: dict[str, set[str]] = {}
    with (data / "welfare.csv").open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            try:
                national = normalise(row["رقم البطاقة الوطنية"], "iq.ncn")
            except InvalidIdentifier:
                continue
            if national in flags:
                expected.setdefault(row["رقم المستفيد"], flags[national])
    return expected


def _summary_table(summary: dict[str, Any]) -> Table:
    table = Table(
        "flag",
        "English",
        "العربية",
        "beneficiaries",
        "households",
        title=f"Collective match: {summary['flagged_beneficiaries']:,} of "
        f"{summary['roster_size']:,} beneficiaries flagged, in "
        f"{summary['flagged_households']:,} of {summary['roster_households']:,} households",
    )
    for code, (english, arabic) in LABELS.items():
        counts = summary["per_flag"].get(code, {"beneficiaries": 0, "households": 0})
        table.add_row(
            code, english, arabic, f"{counts['beneficiaries']:,}", f"{counts['households']:,}"
        )
    return table


def _port(preferred: int) -> int:
    """The usual port if it is free (so the printed commands work as they are), else any."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


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


def _desk(home: Path, *args: str, stdin: str | None = None) -> None:
    """One `matchhub-desk` command, run in this process exactly as the CLI runs it."""
    import io  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from matchhub.agency.desk import cli as desk_cli  # noqa: PLC0415 (the desk's extra)

    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        status = desk_cli.run([*args, "--home", str(home)])
    finally:
        sys.stdin = saved
    if status != 0:
        raise OperatorError(f"`matchhub-desk {' '.join(args[:2])}` failed ({status})")


def _set_up_desk(home: Path, broker: str, setup: _Setup) -> tuple[Path, Path]:
    """The ministry's desk: its home (the ministry's certificate, the matching key and the
    roster extract copied in), and a supervisor, an analyst and a caseworker, whose passwords
    go to a file only the demo's user may read."""
    desk = home / "desk"
    _desk(
        desk,
        "init",
        "--broker",
        broker,
        "--credentials",
        str(home / "agencies" / "molsa"),
        "--code",
        "molsa",
        "--matching-key",
        str(setup.key_file),
        "--definition",
        str(CONNECTORS / "welfare.toml"),
        "--extract",
        str(setup.data / "welfare.csv"),
    )
    passwords = desk / "demo-staff.txt"
    lines = ["# The demo desk's staff: user name, role, password. Delete this file after use."]
    for name, role in STAFF:
        password = secrets.token_urlsafe(12)
        _desk(desk, "user", "add", name, "--role", role, "--password-stdin", stdin=password)
        lines.append(f"{name}\t{role}\t{password}")
    passwords.touch(mode=0o600)
    passwords.write_text("\n".join(lines) + "\n")
    return desk, passwords


def _ministry(console: Console, desk: Path) -> tuple[dict[str, Any], dict[str, set[str]], Path]:
    """The ministry's side, at its desk: the analyst registers the roster and runs the
    collective match; the list comes back as the ministry's own beneficiaries."""
    from matchhub.agency.desk.config import DeskConfig  # noqa: PLC0415 (the desk's extra)
    from matchhub.agency.desk.service import Desk  # noqa: PLC0415

    started = time.monotonic()
    _desk(desk, "roster", "--as", "analyst")
    console.print(
        f"6. the ministry's desk registered its roster as the analyst "
        f"({time.monotonic() - started:.1f} s: read, hashed at the desk, only tokens sent)"
    )
    lists = desk / "lists" / "demo"
    lists.mkdir(parents=True, exist_ok=True, mode=0o700)
    beneficiaries, households = lists / "beneficiaries.csv", lists / "households.csv"
    started = time.monotonic()
    _desk(
        desk,
        "match",
        "--purpose",
        PURPOSE,
        "--out",
        str(beneficiaries),
        "--households",
        str(households),
        "--as",
        "analyst",
    )
    service = Desk(DeskConfig.load(desk))
    try:
        summary: dict[str, Any] = service.matches(limit=1)[0].summary or {}
    finally:
        service.close()
    console.print(
        f"7. collective match against every partner at once, turned back into the ministry's "
        f"beneficiaries and households at the desk: {time.monotonic() - started:.1f} s"
    )
    console.print(_summary_table(summary))
    console.print(
        "   per source: "
        + ", ".join(f"{kind} {n['beneficiaries']:,}" for kind, n in summary["per_source"].items())
        + f" (a beneficiary two partners report counts under each: "
        f"{summary['several_sources']:,} such)"
    )
    with beneficiaries.open(encoding="utf-8-sig", newline="") as f:
        listed = {row["beneficiary_id"]: set(row["flags"].split(";")) for row in csv.DictReader(f)}
    return summary, listed, beneficiaries


def _lookups(console: Console, desk: Path, data: Path, expected: dict[str, set[str]]) -> None:
    """A caseworker looks up three beneficiaries by national ID, one typed in Arabic-Indic
    digits; the desk sends only their tokens."""
    from matchhub.agency.desk.config import DeskConfig  # noqa: PLC0415 (the desk's extra)
    from matchhub.agency.desk.service import Desk  # noqa: PLC0415

    flagged: list[str] = []
    clear: list[str] = []
    with (data / "welfare.csv").open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            target = flagged if row["رقم المستفيد"] in expected else clear
            if len(target) < 2:
                target.append(row["رقم البطاقة الوطنية"])
            if len(flagged) == 2 and clear:
                break
    picks = flagged[:2] + clear[:1]
    picks[0] = normalise(picks[0], "iq.ncn").translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    service = Desk(DeskConfig.load(desk))
    try:
        staff = service.staff("caseworker")
        outcome = service.lookup(staff, "\n".join(picks), PURPOSE)
        catalogue = service.catalogue(staff)
    finally:
        service.close()
    console.print(
        "8. a caseworker looks up three beneficiaries at the desk (one ID typed in Arabic-Indic "
        "digits; the broker sees only tokens):"
    )
    for entry in outcome.entries:
        name = entry.person["name"] if entry.person else "?"
        flags = (
            "; ".join(
                f"{catalogue.flag_label(f['code'], 'en')} ({f['source']}, {f['as_of']})"
                for f in entry.flags
            )
            or "no indication"
        )
        console.print(f"   {name}: {flags}")


def command(name: str) -> str:
    """How to type ``name`` in a new shell: the bare name when it is on the PATH and is this
    installation's, else its path (``.venv/bin/matchhub`` after ``make demo``)."""
    here = Path(sys.executable).parent / name
    if not here.exists():
        return name
    found = shutil.which(name)
    if found is not None and Path(found).resolve() == here.resolve():
        return name
    with contextlib.suppress(ValueError):
        return str(here.relative_to(Path.cwd()))
    return str(here)


def run_demo(home: Path, console: Console, *, people: int = 20_000, seed: int = 2026) -> DemoResult:
    started = time.monotonic()
    prepare_home(home)
    console.rule("[bold]matchhub demo")
    setup = _set_up(home, console, people, seed)
    auditor = home / "auditor"
    auditor.mkdir(parents=True, exist_ok=True)
    port = _port(BROKER_PORT)
    # The log is signed every second here (the janitor's pass signs it), not every minute, so
    # that each connector's check after its push, and the auditor's, cover the demo's entries.
    signing = {"MATCHHUB_AUDIT_CHECKPOINT_SECONDS": "1", "MATCHHUB_JANITOR_INTERVAL_SECONDS": "1"}
    with BrokerProcess(home, setup.creds["molsa"], port=port, env=signing) as broker:
        console.print(
            f"5. broker serving {broker.url} (mutual TLS, client certificates "
            "required); each partner's connector hashes its IDs locally and pushes only "
            "tokens and flag codes:"
        )
        for code, kind, _ in AGENCIES[1:-1]:
            _connect(console, broker.url, home, code=code, kind=kind, key=setup.key_file)
        desk, passwords = _set_up_desk(home, broker.url, setup)
        summary, listed, beneficiaries = _ministry(console, desk)
        expected = _truth(setup.data)
        matches = listed == expected
        console.print(
            f"   the desk's list equal to the synthetic ground truth, per beneficiary: "
            f"{'[green]yes[/]' if matches else '[red]NO[/]'}"
        )
        _lookups(console, desk, setup.data, expected)
        with make_client(broker.url, setup.creds["audit-board"]) as client:
            checkpoint = client.get("/v1/audit/checkpoint").json()
            named = client.get(
                "/v1/audit/entries", params={"agency": "molsa", "limit": 1000}
            ).json()["entries"]
        (auditor / "verifier.key").write_text(checkpoint["verifier_key"] + "\n")
        (auditor / "checkpoint.note").write_text(checkpoint["note"])
    staff_named = sum(1 for e in named if e.get("end_user"))
    console.print(
        f"9. broker stopped. The audit log names the acting member of staff (a pseudonym, "
        f"never a name) on {staff_named:,} of the ministry's {len(named):,} entries."
    )
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
        f"10. the auditor exported the audit log and verified it offline against "
        f"the checkpoint it saved ({checkpoint['size']:,} entries at the time)"
    )
    seconds = time.monotonic() - started
    console.print(
        f"Done in {seconds:.0f} s. State: {home.resolve()}\n"
        f"  {beneficiaries}  the beneficiary list (and households.csv beside it)\n"
        f"  {home / 'connectors'}  each connector's report and rejected rows\n"
        f"  {home / 'broker.log'}  the broker's log\n"
        "The ministry's desk on the demo's state (two terminals):\n"
        f"  {command('matchhub')} --home {home} serve --port {port}\n"
        f"  {command('matchhub-desk')} serve --home {desk} --port {DESK_PORT}\n"
        f"  then open http://127.0.0.1:{DESK_PORT}/ and sign in as supervisor, analyst or "
        f"caseworker with the password in {passwords} (readable by you only)"
    )
    return DemoResult(
        home=home,
        people=people,
        roster=setup.truth["roster"],
        summary=summary,
        matches_truth=matches,
        flagged=listed,
        expected=expected,
        seconds=seconds,
    )
