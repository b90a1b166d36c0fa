from __future__ import annotations

import json
import re
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from matchhub.agency import auditverify
from matchhub.agency.commandline import invoke, listen
from matchhub.audit import service as audit
from matchhub.cases import service as cases_service
from matchhub.catalogue import service as catalogue
from matchhub.catalogue.repository import CatalogueRepository
from matchhub.cli import bootstrap
from matchhub.identity import service as identity
from matchhub.jobs import service as jobs_service
from matchhub.keystore import pki
from matchhub.keystore import service as keystore
from matchhub.keystore.material import load_key_material
from matchhub.kit import logs
from matchhub.kit.db import make_engine, make_sessionmaker, session_scope
from matchhub.kit.errors import MatchhubError, OperatorError
from matchhub.kit.migrate import upgrade
from matchhub.kit.settings import Settings
from matchhub.synth.cli import synth_app
from matchhub.uploads import service as snapshots_service

VERSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

app = typer.Typer(
    help="matchhub operator CLI: state folder, agencies, keys, the server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
agency_app = typer.Typer(help="Register, list and revoke agencies.", no_args_is_help=True)
keys_app = typer.Typer(help="Key ceremony and key versions.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
flags_app = typer.Typer(help="The flag catalogue.", no_args_is_help=True)
purposes_app = typer.Typer(help="Purposes a consumer may state.", no_args_is_help=True)
grants_app = typer.Typer(
    help="Which consumer may see which flag for which purpose.", no_args_is_help=True
)
audit_app = typer.Typer(help="Export and verify the audit log.", no_args_is_help=True)
retention_app = typer.Typer(
    help="Lapsed indications, closed cases and job results past their retention.",
    no_args_is_help=True,
)
app.add_typer(retention_app, name="retention")
app.add_typer(audit_app, name="audit")
app.add_typer(synth_app, name="synth", help="Synthetic population and agency extracts.")
app.add_typer(flags_app, name="flags")
app.add_typer(purposes_app, name="purposes")
app.add_typer(grants_app, name="grants")
app.add_typer(agency_app, name="agency")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")

out = Console(emoji=False)
err = Console(stderr=True, soft_wrap=True, emoji=False)


class State:
    def __init__(self, home: Path | None) -> None:
        self.home = home

    def settings(self, **overrides: object) -> Settings:
        if self.home is not None:
            overrides["home"] = self.home
        try:
            return Settings(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "_".join(str(part) for part in first["loc"]).upper()
            name = f"setting MATCHHUB_{where}" if where else "settings"
            raise OperatorError(f"invalid {name}: {first['msg']}") from None


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(help="State folder (default: $MATCHHUB_HOME or ./var).", show_default=False),
    ] = None,
) -> None:
    ctx.obj = State(home)


DEMO_PEOPLE = (500, 2_000_000)
"""What ``matchhub demo --people`` takes: a population with someone in every role and flag, and
one the demo's one process pushes and matches in minutes."""


def _state(ctx: typer.Context) -> State:
    state = ctx.find_object(State)
    assert state is not None  # noqa: S101 (set by the root callback)
    return state


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    if not settings.paths.ca_cert.exists():
        raise OperatorError(f"{settings.home} is not a matchhub state folder: run `matchhub init`")
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            yield session
    finally:
        engine.dispose()


def _audit(session: Session, settings: Settings, action: str, **details: object) -> None:
    """Every operator change is an audit entry in the transaction that makes it."""
    keys = audit.keys_from(
        load_key_material(settings.paths), settings.hub_name, settings.audit_checkpoint_every
    )
    audit.record_admin(session, keys, action, **details)


@app.command()
def init(
    ctx: typer.Context,
    server_name: Annotated[
        list[str] | None,
        typer.Option(
            help="Name for the server certificate (repeat); default localhost, 127.0.0.1."
        ),
    ] = None,
) -> None:
    """Create the state folder: database, hub CA, server certificate, broker and audit keys."""
    overrides: dict[str, object] = {}
    if server_name:
        overrides["server_names"] = server_name
    settings = _state(ctx).settings(**overrides)
    bootstrap.initialise(settings)
    out.print(f"[green]initialised[/] {settings.home.resolve()}")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply the migrations to the configured database."""
    settings = _state(ctx).settings()
    engine = make_engine(settings.sqlalchemy_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    out.print("[green]database at the latest schema[/]")


@agency_app.command("add")
def agency_add(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="Short stable code, e.g. rafidain-bank.")],
    kind: Annotated[
        str,
        typer.Option(
            help="pension, traffic, bank, trade, education, higher_education, welfare, "
            "auditor, or monitor (the operator's Prometheus: reads /metrics only)."
        ),
    ],
    name: Annotated[str, typer.Option(help="The agency's name.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the certificate and key.")],
) -> None:
    """Register an agency and write its client certificate, key and the CA certificate."""
    settings = _state(ctx).settings()
    agency_kind = identity.parse_kind(kind)
    files: list[Path] = []
    try:
        with _session(settings) as session:
            ca = keystore.load_ca(settings.paths)
            issued = identity.register_agency(
                session, ca, settings.hub_name, code=code, kind=agency_kind, name=name
            )
            _audit(
                session,
                settings,
                "agency.add",
                agency=code,
                agency_kind=agency_kind.value,
                certificate=pki.fingerprint(issued.certificate),
            )
            # Files first, then the commit as the block ends: a failed commit removes them.
            files = bootstrap.write_agency_files(
                out_dir, code, issued, settings.paths.ca_cert.read_bytes()
            )
    except BaseException:
        for path in files[:2]:
            path.unlink(missing_ok=True)
        raise
    out.print(
        f"[green]registered[/] {code} ({agency_kind.value}); wrote "
        + ", ".join(str(f) for f in files)
    )


@agency_app.command("list")
def agency_list(ctx: typer.Context) -> None:
    """Every registered agency with its certificates."""
    settings = _state(ctx).settings()
    table = Table("code", "kind", "name", "certificate serial", "valid until", "state")
    with _session(settings) as session:
        for agency in identity.agencies(session):
            for cert in agency.certificates or [None]:  # type: ignore[list-item]
                state = "revoked" if agency.revoked_at or (cert and cert.revoked_at) else "active"
                table.add_row(
                    agency.code,
                    agency.kind,
                    agency.name,
                    cert.serial if cert else "-",
                    cert.not_after.date().isoformat() if cert else "-",
                    state,
                )
    out.print(table)


@agency_app.command("revoke")
def agency_revoke(
    ctx: typer.Context, code: Annotated[str, typer.Argument(help="The agency's code.")]
) -> None:
    """Revoke an agency and all its certificates; the CRL is republished at once."""
    settings = _state(ctx).settings()
    with _session(settings) as session:
        identity.revoke_agency(session, code)
        _audit(session, settings, "agency.revoke", agency=code)
        identity.publish_crl(session, settings.paths)
    out.print(f"[yellow]revoked[/] {code}")


@keys_app.command("matching-key")
def keys_matching_key(
    ctx: typer.Context,
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the new key (0600).")],
    version: Annotated[str | None, typer.Option(help="Version id (default v<N+1>).")] = None,
) -> None:
    """Make a new matching-key version for the key ceremony.

    The key goes to the file for the agencies' connectors; the broker records only the version
    id, so uploads under it are accepted. The broker never keeps the key.
    """
    from matchhub.protocol.tokens import MatchingKey

    settings = _state(ctx).settings()
    if version is not None and not VERSION_ID.fullmatch(version):
        raise OperatorError("a version id is letters, digits, '.', '_' and '-' (at most 64)")
    out_file.parent.mkdir(parents=True, exist_ok=True)  # as `agency add --out` makes its own
    written = False
    try:
        with _session(settings) as session:
            version_id = keystore.register_matching_key_version(session, version)
            _audit(session, settings, "keys.matching_key", version=version_id)
            MatchingKey.generate(version_id).to_file(out_file)
            written = True
    except BaseException:
        if written:
            out_file.unlink(missing_ok=True)
        raise
    out.print(
        f"[green]matching key {version_id}[/] written to {out_file}; hand it to the "
        "agencies' connectors and do not keep a copy on the broker host"
    )


def _params(pairs: list[str] | None) -> dict[str, object]:
    params: dict[str, object] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise OperatorError(f"--param takes NAME=VALUE, not {pair!r}")
        try:
            params[name] = json.loads(value)
        except ValueError:
            params[name] = value
    return params


@flags_app.command("list")
def flags_list(
    ctx: typer.Context,
    retired: Annotated[bool, typer.Option(help="Include retired flags.")] = False,
) -> None:
    """The catalogue: code, who asserts it, labels, rule, version."""
    settings = _state(ctx).settings()
    table = Table("code", "asserted by", "label (en)", "label (ar)", "rule", "params", "v", "state")
    with _session(settings) as session:
        for flag in CatalogueRepository(session).flags(include_retired=retired):
            table.add_row(
                flag.code,
                flag.asserted_by,
                flag.label_en,
                flag.label_ar,
                flag.rule_text,
                json.dumps(flag.rule_params, ensure_ascii=False),
                str(flag.version),
                "retired" if flag.retired_at else "active",
            )
    out.print(table)


@flags_app.command("add")
def flags_add(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="e.g. bank.mortgage_holder")],
    kind: Annotated[str, typer.Option(help="The provider kind that asserts it.")],
    label_en: Annotated[str, typer.Option(help="English label.")],
    label_ar: Annotated[str, typer.Option(help="Arabic label.")],
    rule: Annotated[str, typer.Option(help="The rule the source applies, in words.")],
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="Machine-readable rule parameter NAME=VALUE (repeat), e.g. threshold=50000000."
        ),
    ] = None,
) -> None:
    """Publish a new flag."""
    settings = _state(ctx).settings()
    with _session(settings) as session:
        _audit(
            session,
            settings,
            "flags.add",
            flag=code,
            asserted_by=kind,
            rule=rule,
            params=json.dumps(_params(param), sort_keys=True),
        )
        catalogue.add_flag(
            session,
            code=code,
            asserted_by=identity.parse_kind(kind),
            label_en=label_en,
            label_ar=label_ar,
            rule_text=rule,
            rule_params=_params(param),
        )
    out.print(f"[green]added flag[/] {code}")


@flags_app.command("set-rule")
def flags_set_rule(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="The flag.")],
    rule: Annotated[str, typer.Option(help="The rule the source applies, in words.")],
    param: Annotated[list[str] | None, typer.Option(help="NAME=VALUE (repeat).")] = None,
) -> None:
    """Change a flag's rule; its version goes up so connectors notice."""
    settings = _state(ctx).settings()
    with _session(settings) as session:
        flag = catalogue.update_rule(session, code, rule, _params(param))
        _audit(
            session,
            settings,
            "flags.set_rule",
            flag=code,
            rule=rule,
            version=flag.version,
            params=json.dumps(_params(param), sort_keys=True),
        )
    out.print(f"[green]flag {code}[/] is now at version {flag.version}")


@flags_app.command("retire")
def flags_retire(
    ctx: typer.Context, code: Annotated[str, typer.Argument(help="The flag.")]
) -> None:
    """Stop accepting and answering a flag."""
    settings = _state(ctx).settings()
    with _session(settings) as session:
        catalogue.retire_flag(session, code)
        _audit(session, settings, "flags.retire", flag=code)
    out.print(f"[yellow]retired[/] {code}")


@purposes_app.command("list")
def purposes_list(ctx: typer.Context) -> None:
    """The purposes a consumer may state, with their legal basis."""
    settings = _state(ctx).settings()
    table = Table("code", "label (en)", "label (ar)", "legal basis")
    with _session(settings) as session:
        for purpose in CatalogueRepository(session).purposes():
            table.add_row(purpose.code, purpose.label_en, purpose.label_ar, purpose.legal_basis)
    out.print(table)


@purposes_app.command("add")
def purposes_add(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="e.g. fraud_investigation")],
    label_en: Annotated[str, typer.Option(help="English label.")],
    label_ar: Annotated[str, typer.Option(help="Arabic label.")],
    legal_basis: Annotated[str, typer.Option(help="The legal basis, cited.")],
) -> None:
    """Add a purpose."""
    settings = _state(ctx).settings()
    with _session(settings) as session:
        catalogue.add_purpose(session, code, label_en, label_ar, legal_basis)
        _audit(session, settings, "purposes.add", purpose=code, legal_basis=legal_basis)
    out.print(f"[green]added purpose[/] {code}")


@purposes_app.command("notice")
def purposes_notice(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="The purpose.")],
    days: Annotated[int, typer.Option(help="Days a person has to respond to a notice.")],
) -> None:
    """Set the response period of the purpose's notices (cases; default
    MATCHHUB_CASE_NOTICE_DAYS, 30). Cases notified from now on get it."""
    settings = _state(ctx).settings()
    with _session(settings) as session:
        cases_service.set_notice_days(session, code, days)
        _audit(session, settings, "purposes.notice", purpose=code, days=days)
    out.print(f"[green]notice period[/] of {code}: {days} days")


@grants_app.command("list")
def grants_list(ctx: typer.Context) -> None:
    """Every grant: grantee, flag, purpose."""
    settings = _state(ctx).settings()
    table = Table("grantee", "flag", "purpose")
    with _session(settings) as session:
        for grant in CatalogueRepository(session).grants():
            table.add_row(grant.grantee, grant.flag_code, grant.purpose_code)
    out.print(table)


@grants_app.command("add")
def grants_add(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="kind:welfare or agency:<code>.")],
    flag: Annotated[str, typer.Option(help="The flag.")],
    purpose: Annotated[str, typer.Option(help="The purpose.")],
) -> None:
    """Let a consumer see a flag for a purpose."""
    settings = _state(ctx).settings()
    with _session(settings) as session:
        catalogue.add_grant(session, to, flag, purpose)
        _audit(session, settings, "grants.add", grantee=to, flag=flag, purpose=purpose)
    out.print(f"[green]granted[/] {flag} to {to} for {purpose}")


@grants_app.command("revoke")
def grants_revoke(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="kind:welfare or agency:<code>.")],
    flag: Annotated[str, typer.Option(help="The flag.")],
    purpose: Annotated[str, typer.Option(help="The purpose.")],
) -> None:
    """Withdraw a grant."""
    settings = _state(ctx).settings()
    with _session(settings) as session:
        catalogue.revoke_grant(session, to, flag, purpose)
        _audit(session, settings, "grants.revoke", grantee=to, flag=flag, purpose=purpose)
    out.print(f"[yellow]revoked[/] {flag} from {to} for {purpose}")


@keys_app.command("retire")
def keys_retire(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="The matching-key version to retire.")],
) -> None:
    """Complete a key rotation: uploads under VERSION are refused from now on, and every
    snapshot, roster and job result stored under it is discarded and purged."""
    settings = _state(ctx).settings()
    with _session(settings) as session:
        keystore.retire_matching_key_version(session, version)
        rosters, snapshots, uploads = snapshots_service.discard_key_version(session, version)
        counts = {
            "snapshots": snapshots,
            "uploads": uploads,
            "job_results": jobs_service.purge_results_on_rosters(session, rosters),
        }
        _audit(session, settings, "keys.retire", version=version, **counts)
    with _session(settings) as session:
        rows = snapshots_service.purge_unreachable(session)
    out.print(
        f"[yellow]retired[/] matching-key version {version}: {counts['snapshots']} "
        f"snapshots, {counts['uploads']} open uploads and {counts['job_results']} job "
        f"results discarded; {rows:,} rows purged"
    )


@audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the export.")],
) -> None:
    """Entries and signed checkpoints to files, for `matchhub audit verify` anywhere."""
    settings = _state(ctx).settings()
    with _session(settings) as session:
        keys = audit.keys_from(
            load_key_material(settings.paths), settings.hub_name, settings.audit_checkpoint_every
        )
        count, notes = audit.export(session, keys, out_dir)
    out.print(
        f"exported {count} entries and {notes} checkpoints to {out_dir}; the log's "
        f"verifier key is in {out_dir / 'verifier.key'} (pin your own copy)"
    )


audit_app.command("verify")(auditverify.verify)  # the same on the agency side's install


@retention_app.command("run")
def retention_run(ctx: typer.Context) -> None:
    """Now, what the background pass does on schedule: record lapsed indications, delete
    closed cases and job results past their retention, a receipt each in the audit log."""
    from matchhub.cases import retention
    from matchhub.kit.clock import Clock

    settings = _state(ctx).settings()
    if not settings.paths.ca_cert.exists():
        raise OperatorError(f"{settings.home} is not a matchhub state folder: run `matchhub init`")
    keys = audit.keys_from(
        load_key_material(settings.paths), settings.hub_name, settings.audit_checkpoint_every
    )
    engine = make_engine(settings.sqlalchemy_url)
    try:
        lapsed, receipts = retention.run(make_sessionmaker(engine), keys, settings, Clock().now())
    finally:
        engine.dispose()
    out.print(f"{lapsed} indications lapsed")
    for receipt in receipts:
        out.print(
            f"deleted {len(receipt.ids)} {receipt.record_class} ({receipt.policy}); "
            f"receipt: audit entry {receipt.seq}"
        )
    if not receipts:
        out.print("nothing past its retention")


@app.command("proxy-cert")
def proxy_cert(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The proxy's name, e.g. edge-1.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the certificate and key.")],
) -> None:
    """A client certificate for an mTLS-terminating proxy (nginx) to present to the broker.

    Set MATCHHUB_CLIENT_CERT_SOURCE=proxy and add the printed fingerprint to
    MATCHHUB_TRUSTED_PROXY_FINGERPRINTS: only connections presenting it may forward a client
    certificate. See deploy/nginx-matchhub.conf and deploy/README.md.
    """
    settings = _state(ctx).settings()
    with _session(settings) as session:
        ca = keystore.load_ca(settings.paths)
        issued = pki.issue_client(
            ca,
            settings.hub_name,
            name,
            f"{name} (mTLS proxy)",
            uri=pki.proxy_uri(settings.hub_name, name),
        )
        print_fp = pki.fingerprint(issued.certificate)
        _audit(session, settings, "proxy.issue", proxy=name, certificate=print_fp)
        bootstrap.write_agency_files(out_dir, name, issued, settings.paths.ca_cert.read_bytes())
    out.print(f"wrote {out_dir}/{name}.pem and {name}-key.pem; fingerprint:")
    out.print(print_fp, highlight=False, soft_wrap=True)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.", min=0, max=65535)] = None,
) -> None:
    """HTTPS with required client certificates (verified against the hub CA and CRL)."""
    from matchhub.web.server import build_server

    overrides: dict[str, object] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    settings = _state(ctx).settings(**overrides)
    server = build_server(settings)  # the keys and the TLS material, checked first
    listening = _listen(settings.host, settings.port)
    # Only now is it true: the keys were read and the port is ours.
    out.print(f"matchhub serving https://{settings.host}:{settings.port} (state {settings.home})")
    server.run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound before anything says it serves."""
    try:
        return listen(host, port)
    except OSError as exc:
        raise OperatorError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (--host, --port)"
        ) from None


@app.command()
def worker(ctx: typer.Context) -> None:
    """Match jobs, purges, retention and checkpoints, with no HTTP (run any number)."""
    from matchhub.web.worker import run_worker

    settings = _state(ctx).settings()
    out.print(f"matchhub worker (state {settings.home})")
    run_worker(settings)


@app.command()
def processes(ctx: typer.Context) -> None:
    """The broker processes announced in the database, and when each was last seen."""
    from matchhub.fleet.repository import FleetRepository
    from matchhub.kit.models import utcnow

    settings = _state(ctx).settings()
    table = Table("process", "role", "host", "pid", "started", "last seen")
    with _session(settings) as session:
        now = utcnow()
        for row in FleetRepository(session).all():
            ago = (now - row.seen_at).total_seconds()
            table.add_row(
                row.id,
                row.role,
                row.host,
                str(row.pid),
                row.started_at.isoformat(timespec="seconds"),
                f"{ago:.0f} s ago" + (" (gone?)" if ago > 3 * settings.heartbeat_seconds else ""),
            )
    out.print(table)


@app.command()
def demo(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            help="A fresh folder for the demo's state (default: matchhub's --home, else var/demo).",
            show_default=False,
        ),
    ] = None,
    people: Annotated[
        int,
        typer.Option(
            min=DEMO_PEOPLE[0],
            max=DEMO_PEOPLE[1],
            help=f"Size of the synthetic population ({DEMO_PEOPLE[0]:,} to {DEMO_PEOPLE[1]:,}).",
        ),
    ] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic population.")] = 2026,
) -> None:
    """The whole story end to end on the embedded SQLite default: init, agencies, key
    ceremony, synthetic data, every connector over mTLS, a match job, lookups, audit verify."""
    from matchhub.cli.demo import run_demo

    home = home or _state(ctx).home or Path("var/demo")
    result = run_demo(home, out, people=people, seed=seed)
    if not result.matches_truth:
        raise OperatorError("the broker's answer differs from the synthetic ground truth")


@app.command()
def openapi(
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the document.")] = Path(
        "openapi/openapi.json"
    ),
) -> None:
    """Write the OpenAPI document of this version of the API."""
    from matchhub.web.openapi import write_document

    write_document(out_file)
    out.print(f"wrote {out_file}")


def main(argv: Sequence[str] | None = None) -> None:
    """The ``matchhub`` command, with ``argv`` (default: the process's arguments); exits."""
    logs.configure()
    try:
        code = invoke(app, argv, "matchhub")
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except (OperatorError, MatchhubError, auditverify.NotVerified) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(1)
    except auditverify.NotChecked as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except OSError as exc:
        err.print(f"[red]error:[/] {exc.strerror or exc}: {exc.filename or ''}", highlight=False)
        sys.exit(1)
    sys.exit(code)
