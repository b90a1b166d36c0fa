"""
``matchhub-desk``: set up, run and script the ministry's desk.

::

    matchhub-desk init --home DIR --broker URL --credentials DIR --code CODE \\
        --matching-key FILE --definition connectors/welfare.toml --extract FILE
    matchhub-desk init --home DIR --broker URL --credentials DIR --code CODE   (an audit office)
    matchhub-desk user add NAME --role caseworker|analyst|supervisor|auditor [--password-stdin]
    matchhub-desk user list | user disable NAME | user enable NAME
    matchhub-desk serve [--host 127.0.0.1] [--port 8600] [--certificate PEM --key PEM]
    matchhub-desk roster --as NAME [--extract FILE]
    matchhub-desk match --purpose P --out FILE.csv --as NAME [--flag F ...]
    matchhub-desk lookup --purpose P --as NAME ID...

``--home`` (or ``MATCHHUB_DESK_HOME``) names the desk's home folder, default ``./desk``.
Scripts act as a named member of staff (``--as``), exactly as the pages do: the broker's log
names them (by pseudonym), and the desk's own log records the action. A usage error is one line
and the usage, exit status 2; a refusal is one line, exit status 1; never a traceback.
"""

from __future__ import annotations

import getpass
import os
import secrets
import shutil
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from matchhub.agency.commandline import invoke, listen
from matchhub.agency.connector.definition import DefinitionError, load
from matchhub.agency.desk import accounts
from matchhub.agency.desk.accounts import AccountError
from matchhub.agency.desk.broker import BrokerError
from matchhub.agency.desk.config import CONFIG_FILE, ConfigError, DeskConfig, Settings
from matchhub.agency.desk.db import Database, upgrade
from matchhub.agency.desk.roster import ExtractError
from matchhub.agency.desk.service import Desk, DeskError
from matchhub.protocol.tokens import InvalidMatchingKey, MatchingKey

HOME_ENV = "MATCHHUB_DESK_HOME"

app = typer.Typer(
    help="matchhub-desk: the ministry's desk (staff pages, collective match, case lookup).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
users_app = typer.Typer(help="Staff accounts.", no_args_is_help=True)
app.add_typer(users_app, name="user")
out = Console(highlight=False, emoji=False)
err = Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)


class CliError(Exception):
    """One line for the person at the terminal; exit status 1."""


HomeOpt = Annotated[
    Path,
    typer.Option(
        "--home", envvar=HOME_ENV, help="The desk's home folder (env MATCHHUB_DESK_HOME)."
    ),
]
AsOpt = Annotated[str, typer.Option("--as", help="The member of staff the command acts for.")]
PurposeOpt = Annotated[str, typer.Option(help="The purpose, e.g. eligibility_review.")]
DEFAULT_HOME = Path("desk")


def _config(home: Path) -> DeskConfig:
    try:
        return DeskConfig.load(home)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _desk(home: Path) -> Desk:
    config = _config(home)
    try:
        return Desk(config)
    except (DefinitionError, InvalidMatchingKey, OSError) as exc:
        raise CliError(f"{home}: {exc}") from None


# --- init ----------------------------------------------------------------------------------------


@app.command()
def init(
    broker: Annotated[str, typer.Option(help="The broker's base URL (https://...).")],
    credentials: Annotated[
        Path, typer.Option(help="Folder with CODE.pem, CODE-key.pem and ca.pem.")
    ],
    code: Annotated[str, typer.Option(help="The ministry's agency code at the broker.")],
    matching_key: Annotated[
        Path | None,
        typer.Option(
            help="The matching-key file of the ceremony (an audit office: only if it was "
            "given one, for subject-access requests)."
        ),
    ] = None,
    definition: Annotated[
        Path | None, typer.Option(help="connectors/welfare.toml (with [roster]).")
    ] = None,
    extract: Annotated[
        Path | None,
        typer.Option(help="The roster extract (UTF-8 CSV). Without it: an audit office's desk."),
    ] = None,
    audit_key: Annotated[
        Path | None,
        typer.Option(
            help="The broker log's verifier key, obtained out of band (`matchhub audit "
            "export` writes verifier.key); else pinned on the first visit."
        ),
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    database_url: Annotated[
        str | None,
        typer.Option(help="PostgreSQL URL for the desk's own tables (default: SQLite in HOME)."),
    ] = None,
) -> None:
    """Make a desk home: copy in the certificate, key, matching key, definition and extract
    (mode 0600), and create the desk's database. Without an extract, the home of an audit
    office's console (its certificate, and a matching key only if given). Refuses to
    overwrite."""
    if (home / CONFIG_FILE).exists() or (home.exists() and any(home.iterdir())):
        raise CliError(f"{home} exists and is not empty; the desk never overwrites a home")
    if not broker.startswith("https://"):
        raise CliError(f"--broker {broker}: must be an https:// URL (mutual TLS)")
    sources = _check_inputs(credentials, code, matching_key, definition, extract)
    auditor = extract is None
    config = DeskConfig(
        home=home,
        broker=broker.rstrip("/"),
        code=code,
        kind="auditor" if auditor else "welfare",
        database_url=database_url or f"sqlite:///{home.resolve() / 'desk.db'}",
        desk_id=secrets.token_hex(6),
        settings=Settings(),
    )
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(home, 0o700)
        (home / "credentials").mkdir(mode=0o700)
        for source, target in sources.items():
            _copy_secret(source, home / target)
        for given, kept in (
            (matching_key, config.matching_key),
            (definition, config.definition),
            (extract, config.extract),
            (audit_key, config.audit_key),
        ):
            if given is not None:
                _copy_secret(given, kept)
        for folder in (config.rosters, config.lists, config.incoming, config.witness):
            folder.mkdir(mode=0o700)
        config.config_file.write_text(config.render(database_url), encoding="utf-8")
        database = Database(config.database_url)
        try:
            upgrade(database.engine)
        finally:
            database.close()
    except Exception:
        shutil.rmtree(home, ignore_errors=True)
        raise
    out.print(f"desk home made in {home.resolve()}")
    first = "auditor" if auditor else "supervisor"
    out.print(f"  next: matchhub-desk user add NAME --role {first} --home {home}")
    out.print(f"        matchhub-desk serve --home {home}")


def _check_inputs(
    credentials: Path,
    code: str,
    matching_key: Path | None,
    definition: Path | None,
    extract: Path | None,
) -> dict[Path, Path]:
    """What ``init`` copies in, each checked first: the certificate, key and CA certificate
    (source → place in the home), and the matching key, definition and extract as given."""
    sources = {
        credentials / f"{code}.pem": Path("credentials") / f"{code}.pem",
        credentials / f"{code}-key.pem": Path("credentials") / f"{code}-key.pem",
        credentials / "ca.pem": Path("credentials") / "ca.pem",
    }
    for source in sources:
        if not source.is_file():
            raise CliError(
                f"--credentials {credentials}: no {source.name}; `matchhub agency add {code} "
                "--out DIR` writes CODE.pem, CODE-key.pem and ca.pem"
            )
    auditor = extract is None
    if not auditor and (matching_key is None or definition is None):
        raise CliError(
            "a ministry's desk needs --matching-key, --definition and --extract; an audit "
            "office's desk none of them (--matching-key only for subject-access requests)"
        )
    try:
        if matching_key is not None:
            MatchingKey.from_file(matching_key)
        spec = load(definition) if definition is not None else None
    except (InvalidMatchingKey, DefinitionError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"--matching-key {matching_key}: {exc.strerror}") from None
    if not auditor and (spec is None or not spec.roster or not spec.roster_columns):
        raise CliError(
            f"--definition {definition}: a welfare (roster) definition with a [roster] table "
            "naming the beneficiary ID, household ID, name and governorate columns"
        )
    if extract is not None and not extract.is_file():
        raise CliError(f"--extract {extract}: no such file")
    return sources


def _copy_secret(source: Path, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file, source.open("rb") as original:
        shutil.copyfileobj(original, file, 1 << 20)


# --- users ---------------------------------------------------------------------------------------


@users_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="The member of staff's user name.")],
    role: Annotated[str, typer.Option(help="caseworker, analyst, supervisor or auditor.")],
    home: HomeOpt = DEFAULT_HOME,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    language: Annotated[str, typer.Option(help="ar (default) or en.")] = "ar",
) -> None:
    """Add a member of staff; the password is typed twice (or read from standard input)."""
    try:
        parsed = accounts.parse_role(role)
    except AccountError as exc:
        raise typer.BadParameter(str(exc), param_hint="--role") from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise CliError("the two passwords differ; nothing was changed")
    config = _config(home)
    database = Database(config.database_url)
    try:
        with database.transaction() as session:
            user = accounts.add_user(session, name, parsed, password, language)
            from matchhub.agency.desk import eventlog

            eventlog.record(session, None, "staff.add", staff=user.name, role=parsed.value)
    except AccountError as exc:
        raise CliError(str(exc)) from None
    finally:
        database.close()
    out.print(f"added {name} ({parsed.value})")
    if accounts.password_hashing() != accounts.DEFAULT_PASSWORD_HASHING:
        err.print(
            f"[red]warning:[/] {accounts.PASSWORD_HASHING_ENV} is "
            f"{accounts.password_hashing()}: this password's hash protects nothing (the test "
            "suite's setting); it is made strong at the first sign-in on a real desk",
            highlight=False,
        )


@users_app.command("list")
def user_list(home: HomeOpt = DEFAULT_HOME) -> None:
    """The staff: name, role, state, last sign-in (never a password or a pseudonym)."""
    config = _config(home)
    database = Database(config.database_url)
    try:
        with database.transaction() as session:
            people = accounts.users(session)
    finally:
        database.close()
    table = Table("name", "role", "state", "language", "last sign-in")
    for user in people:
        table.add_row(
            user.name,
            user.role,
            "disabled" if user.disabled else "active",
            user.language,
            user.last_sign_in.isoformat(timespec="minutes") if user.last_sign_in else "-",
        )
    out.print(table)


def _set_disabled(home: Path, name: str, disabled: bool) -> None:
    from matchhub.agency.desk import eventlog, sessions

    config = _config(home)
    database = Database(config.database_url)
    try:
        with database.transaction() as session:
            user = accounts.set_disabled(session, name, disabled)
            if disabled:
                sessions.end_all(session, user.id)
            eventlog.record(
                session, None, "staff.disable" if disabled else "staff.enable", staff=user.name
            )
    except AccountError as exc:
        raise CliError(str(exc)) from None
    finally:
        database.close()


@users_app.command("disable")
def user_disable(name: str, home: HomeOpt = DEFAULT_HOME) -> None:
    """Disable a member of staff (their sessions end at once)."""
    _set_disabled(home, name, True)
    out.print(f"disabled {name}")


@users_app.command("enable")
def user_enable(name: str, home: HomeOpt = DEFAULT_HOME) -> None:
    """Enable a member of staff again (and lift a lockout)."""
    _set_disabled(home, name, False)
    out.print(f"enabled {name}")


# --- serve ---------------------------------------------------------------------------------------


@app.command()
def serve(
    home: HomeOpt = DEFAULT_HOME,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8600,
    certificate: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this certificate (PEM).")
    ] = None,
    key: Annotated[Path | None, typer.Option(help="The certificate's private key (PEM).")] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Behind a reverse proxy: its address, whose X-Forwarded-* to trust."),
    ] = None,
) -> None:
    """Serve the desk's pages."""
    import uvicorn

    from matchhub.agency.desk.app import create_app

    if (certificate is None) != (key is None):
        raise typer.BadParameter("give both --certificate and --key, or neither")
    try:  # the test suite's cheap password hashing never serves staff
        hashing = accounts.password_hashing()
    except AccountError as exc:
        raise CliError(str(exc)) from None
    if hashing != accounts.DEFAULT_PASSWORD_HASHING:
        raise CliError(
            f"{accounts.PASSWORD_HASHING_ENV} is {hashing}: parameters that protect nothing, "
            "for the test suite only; a desk never serves with them (unset it)"
        )
    listening = _listen(host, port)  # before anything says it serves
    try:
        config = _config(home)
        if certificate is not None:
            config = config.with_settings(secure_cookies=True)
        try:
            desk = Desk(config)
        except (DefinitionError, InvalidMatchingKey, OSError) as exc:
            raise CliError(f"{home}: {exc}") from None
        try:
            upgrade(desk.db.engine)
            scheme = "https" if certificate else "http"
            err.print(f"matchhub-desk serving {scheme}://{host}:{port} (home {home.resolve()})")
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(desk),
                    host=host,
                    port=port,
                    ssl_certfile=str(certificate) if certificate else None,
                    ssl_keyfile=str(key) if key else None,
                    proxy_headers=forwarded_allow_ips is not None,
                    forwarded_allow_ips=forwarded_allow_ips,
                    server_header=False,
                    log_level="warning",
                    access_log=False,
                )
            )
            server.run(sockets=[listening])
        finally:
            desk.close()
    finally:
        listening.close()


def _listen(host: str, port: int) -> socket.socket:
    """The desk's listening socket, bound: a port in use or an address this machine does not
    have is one line at the terminal, before anything is loaded or said to be served."""
    try:
        return listen(host, port)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


# --- scripting -----------------------------------------------------------------------------------


@app.command()
def roster(
    as_: AsOpt,
    home: HomeOpt = DEFAULT_HOME,
    extract: Annotated[
        Path | None, typer.Option(help="A new extract (default: the one the desk holds).")
    ] = None,
) -> None:
    """Register (or refresh) the roster at the broker, as a named member of staff."""
    desk = _desk(home)
    try:
        staff = _allowed(desk, as_, "roster")
        source = extract or desk.config.extract
        if not source.is_file():
            raise CliError(f"--extract {source}: no such file")
        number = desk.start_roster(staff, source, wait=True)
        registered = next(r for r in desk.rosters() if r.id == number)
        if registered.state != "current":
            raise CliError(f"the roster was not registered: {registered.error}")
        counts = registered.counts
        out.print(
            f"roster version {registered.version} registered: {counts['people']:,} people in "
            f"{counts['households']:,} households ({sum(counts['rejected'].values()):,} rows "
            "rejected)"
        )
    finally:
        desk.close()


def _allowed(desk: Desk, name: str, permission: str) -> accounts.Staff:
    staff = desk.staff(name)
    if not staff.may(accounts.Permission(permission)):
        raise CliError(f"{name} ({staff.role.value}) may not do this ({permission})")
    return staff


@app.command()
def match(
    purpose: PurposeOpt,
    out_file: Annotated[Path, typer.Option("--out", help="Write the beneficiary list here.")],
    as_: AsOpt,
    home: HomeOpt = DEFAULT_HOME,
    flag: Annotated[
        list[str] | None, typer.Option(help="Only this flag (repeat for several).")
    ] = None,
    households: Annotated[
        Path | None, typer.Option(help="Also write the household list here.")
    ] = None,
) -> None:
    """Run a collective match and write the beneficiary list (CSV), as a named analyst."""
    desk = _desk(home)
    try:
        staff = _allowed(desk, as_, "download")
        _allowed(desk, as_, "match")
        number = desk.start_match(staff, purpose, flag, wait=True)
        found = desk.match(number)
        assert found is not None  # noqa: S101
        if found.state != "ready" or not found.summary:
            raise CliError(f"the match failed: {found.error}")
        folder = desk.match_folder(number)
        shutil.copyfile(folder / "beneficiaries.csv", out_file)
        if households is not None:
            shutil.copyfile(folder / "households.csv", households)
        desk.record(staff, "download", match=number, list="beneficiaries.csv", via="cli")
        summary = found.summary
        out.print(
            f"match {number}: {summary['flagged_beneficiaries']:,} of {summary['roster_size']:,} "
            f"beneficiaries flagged, in {summary['flagged_households']:,} households; "
            f"list written to {out_file}"
        )
    finally:
        desk.close()


@app.command()
def lookup(
    purpose: PurposeOpt,
    ids: Annotated[list[str], typer.Argument(help="National IDs (Arabic-Indic digits fine).")],
    as_: AsOpt,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Look up one or a few national IDs, as a named caseworker."""
    desk = _desk(home)
    try:
        staff = _allowed(desk, as_, "lookup")
        outcome = desk.lookup(staff, "\n".join(ids), purpose)
        if outcome.problems:
            lines = "; ".join(f"ID {p.line}: {p.reason}" for p in outcome.problems)
            raise CliError(f"nothing was sent: {lines}")
        catalogue = desk.catalogue(staff)
        for entry in outcome.entries:
            who = f" ({entry.person['name']})" if entry.person else ""
            if not entry.on_roster:
                out.print(f"{entry.typed}{who}: not on the roster")
            elif not entry.flags:
                out.print(f"{entry.typed}{who}: no indication")
            else:
                flags = "; ".join(
                    f"{catalogue.flag_label(f['code'], 'en')} ({f['source']}, as of {f['as_of']})"
                    for f in entry.flags
                )
                out.print(f"{entry.typed}{who}: indications to verify: {flags}")
    finally:
        desk.close()


# --- entry points --------------------------------------------------------------------------------


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` and return the exit status."""
    try:
        return invoke(app, argv, "matchhub-desk")
    except typer.Abort:
        err.print("aborted")
        return 130
    except (CliError, DeskError, BrokerError, ExtractError, ConfigError) as exc:
        err.print(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


def main() -> None:
    sys.exit(run())
