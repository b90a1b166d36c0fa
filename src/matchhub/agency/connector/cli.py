"""
``matchhub-connect``: the connector an agency runs next to its own data.

::

    matchhub-connect push --definition connectors/bank.toml --extract loans.csv \\
        --matching-key matching-key.json --credentials certs/ --code rafidain \\
        --broker https://hub.example:8443

It reads the definition, asks the broker for the current rules of the flags the agency asserts
(``GET /v1/flags``: the thresholds are the catalogue's, never copied into the connector), reads
the extract as a stream, evaluates the rules locally, turns each flagged person's national ID
into a keyed-hash token, and pushes token + flag codes as one snapshot. Nothing else leaves the
agency: no ID, no name, no amount. ``--dry-run`` does everything but contact the broker; it
applies the rules of ``--rules FILE`` (a saved ``GET /v1/flags`` answer, see
``matchhub-connect rules``) or else the catalogue defaults shipped with matchhub
(`matchhub.protocol.catalogue`), and says which in its report.

An interrupted push resumes: the open upload's id and a digest of the inputs are kept in
``--state-dir``; rerun the same command and it continues where the broker stands.

Every failure is one line naming the file, line or setting to fix, with a non-zero exit status.
Messages never hold an identifier or a token (see `matchhub.agency.connector.extract`).
"""

from __future__ import annotations

import contextlib
import json
import ssl
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from matchhub.agency.commandline import invoke
from matchhub.agency.connector.client import AgencyCredentials, make_client
from matchhub.agency.connector.definition import (
    Definition,
    DefinitionError,
    Plan,
    Rule,
    RulesError,
    default_rules,
    load,
    rules_from_catalogue,
)
from matchhub.agency.connector.extract import (
    MAX_CHUNK_BYTES,
    REJECTED_FILE,
    Evaluation,
    ExtractError,
    evaluate,
    token_rows,
    wire_chunks,
)
from matchhub.agency.connector.push import FORMATS, Chunk, PushClient, PushError, PushResult
from matchhub.agency.connector.state import PushState, StateError, StateFile, inputs_digest
from matchhub.agency.connector.witness import ApiWitness, Witness, WitnessError, WitnessOutcome
from matchhub.protocol.tokens import InvalidMatchingKey, MatchingKey, Tokeniser

__all__ = ["ConnectError", "app", "main", "make_witness", "run"]

REPORT_FILE = "report.json"
TRANSIENT_STATUSES = frozenset({408, 429})

app = typer.Typer(
    help="matchhub-connect: evaluate an agency's extract locally and push tokens and flags.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(emoji=False)
err = Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)


class ConnectError(Exception):
    """A failure the operator can fix: one line naming the file, line or setting."""


class WireFormat(StrEnum):
    compact = "compact"
    ndjson = "ndjson"


def make_witness(state_dir: Path, code: str) -> Witness:
    """The audit witness of every push: the broker's signed checkpoint before and after, each
    consistent with the last one this agency accepted (kept in the state folder)."""
    return ApiWitness(state_dir / f"{code}.audit")


# --- options -------------------------------------------------------------------------------------

DefinitionOpt = Annotated[
    Path, typer.Option("--definition", help="Connector definition (connectors/KIND.toml).")
]
CredentialsOpt = Annotated[
    Path | None,
    typer.Option(help="Folder with CODE.pem, CODE-key.pem and ca.pem (`matchhub agency add`)."),
]
CodeOpt = Annotated[str | None, typer.Option(help="The agency's code, as registered.")]
BrokerOpt = Annotated[
    str | None, typer.Option(help="The broker's base URL, e.g. https://127.0.0.1:8443.")
]


@dataclass
class Report:
    """What a run did; printed as a table and written to ``<out>/report.json``."""

    definition: str
    extract: str
    kind: str
    dry_run: bool
    rules: str
    rows_read: int = 0
    people: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    rejected_detail: dict[str, int] = field(default_factory=dict)
    flagged: dict[str, int] = field(default_factory=dict)
    rows_to_send: int = 0
    rows_sent: int = 0
    chunks_sent: int = 0
    resumed_from_chunk: int | None = None
    upload_id: str | None = None
    state: str = "not sent"
    key_version: str | None = None
    witness: str = ""
    rejected_file: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def record(self, evaluation: Evaluation) -> None:
        self.rows_read, self.people = evaluation.rows, evaluation.people
        self.rejected = dict(sorted(evaluation.rejected.items()))
        self.rejected_detail = dict(sorted(evaluation.rejected_detail.items()))
        self.flagged, self.rows_to_send = evaluation.flagged, evaluation.to_send

    def render(self, console: Console) -> None:
        table = Table(title="matchhub-connect report", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        rejected = ", ".join(f"{k} {v:,}" for k, v in self.rejected_detail.items()) or "none"
        rows: list[tuple[str, str]] = [
            ("definition", f"{self.definition} ({self.kind})"),
            ("extract", self.extract),
            ("rules", self.rules),
            ("rows read", f"{self.rows_read:,}"),
            ("rejected", f"{sum(self.rejected.values()):,} ({rejected})"),
            ("rejected rows", self.rejected_file),
            ("people", f"{self.people:,}"),
            *((f"flag {code}", f"{n:,} people") for code, n in self.flagged.items()),
            ("rows to send", f"{self.rows_to_send:,}"),
            ("rows sent", f"{self.rows_sent:,} in {self.chunks_sent:,} chunks"),
        ]
        if self.resumed_from_chunk is not None:
            rows.append(("resumed", f"from chunk {self.resumed_from_chunk}"))
        rows += [
            ("upload", self.upload_id or "-"),
            ("state", self.state),
            ("key version", self.key_version or "-"),
            ("audit witness", self.witness or "-"),
            ("seconds", f"{self.seconds:.2f}"),
        ]
        rows += [("note", note) for note in self.notes]
        for name, value in rows:
            table.add_row(name, value)
        console.print(table)

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / REPORT_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")


# --- the push command -----------------------------------------------------------------------------


@app.command()
def push(  # noqa: PLR0917 (typer commands take their options as parameters)
    definition: DefinitionOpt,
    extract: Annotated[Path, typer.Option(help="The extract: a UTF-8 CSV file with a header.")],
    matching_key: Annotated[
        Path | None,
        typer.Option(help="Matching-key file from the key ceremony (optional with --dry-run)."),
    ] = None,
    credentials: CredentialsOpt = None,
    code: CodeOpt = None,
    broker: BrokerOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read, validate and report; contact nobody.")
    ] = False,
    rules: Annotated[
        Path | None,
        typer.Option(
            help="With --dry-run: rules from a saved `GET /v1/flags` answer "
            "(default: the catalogue defaults shipped with matchhub)."
        ),
    ] = None,
    wire_format: Annotated[
        WireFormat, typer.Option("--format", help="Chunk format on the wire.")
    ] = WireFormat.compact,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk.")] = 50_000,
    state_dir: Annotated[
        Path, typer.Option(help="Where the resume state of an interrupted push is kept.")
    ] = Path(".matchhub-connect"),
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Where rejected.csv and report.json go (default: STATE_DIR/CODE)."
        ),
    ] = None,
    as_of: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="The extract's date (default: today)."),
    ] = None,
    max_rejected: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Refuse to push when more than this share of rows (and more than 10 rows) is "
            "rejected: a snapshot replaces the last one, so a broken extract would clear "
            "everyone's flags.",
        ),
    ] = 0.05,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Evaluate an extract with a connector definition and push tokens and flags."""
    started = time.monotonic()
    spec = _load_definition(definition)
    key = _load_key(matching_key) if matching_key is not None else None
    target = out_dir or state_dir / (code or spec.kind.value)
    report = Report(
        definition=str(definition),
        extract=str(extract),
        kind=spec.kind.value,
        dry_run=dry_run,
        rules="",
        rejected_file=str(target / REJECTED_FILE),
    )
    if dry_run:
        _refuse_online_options(credentials, code, broker)
        plan, report.rules = _offline_plan(spec, rules)
        evaluation = _evaluate(extract, plan, target, progress)
        report.record(evaluation)
        report.state, report.key_version = "dry run: nothing sent", key.version if key else None
        _finish(report, started, target)
        _check_rejections(evaluation, max_rejected, target)
        return
    if rules is not None:
        raise ConnectError("--rules is only for --dry-run: a push applies the broker's rules")
    if key is None:
        raise ConnectError("--matching-key is required to push (or use --dry-run)")
    creds, base = _online_options(credentials, code, broker)
    session = _Session(base, creds, code or "")
    try:
        session.connect(spec)
        plan = session.plan(spec)
        report.rules = f"from the broker ({base})"
        report.notes += [
            f"the catalogue has flag {flag}, which {definition} does not assert"
            for flag in session.unasserted
        ]
        evaluation = _evaluate(extract, plan, target, progress)
        report.record(evaluation)
        _check_rejections(evaluation, max_rejected, target)
        upload = _Upload(session, plan, evaluation, key, report, state_dir=state_dir)
        upload.run(wire_format, chunk_rows, as_of.date() if as_of else None, progress)
    finally:
        session.close()
        if report.rows_read or report.upload_id:
            _finish(report, started, target)


def _finish(report: Report, started: float, target: Path) -> None:
    report.seconds = round(time.monotonic() - started, 3)
    report.write(target)
    report.render(out)


def _load_definition(path: Path) -> Definition:
    try:
        return load(path)
    except DefinitionError as exc:
        raise ConnectError(str(exc)) from None


def _load_key(path: Path) -> MatchingKey:
    try:
        return MatchingKey.from_file(path)
    except InvalidMatchingKey as exc:
        raise ConnectError(f"--matching-key: {exc}") from None
    except OSError as exc:
        raise ConnectError(f"--matching-key {path}: {exc.strerror}") from None


def _refuse_online_options(*values: object) -> None:
    if any(v is not None for v in values):
        raise ConnectError("--dry-run contacts nobody: leave out --credentials, --code, --broker")


def _offline_plan(spec: Definition, rules_file: Path | None) -> tuple[Plan, str]:
    try:
        if rules_file is None:
            return spec.plan(default_rules()), "catalogue defaults (matchhub.protocol.catalogue)"
        try:
            document = json.loads(rules_file.read_bytes())
        except OSError as exc:
            raise ConnectError(f"--rules {rules_file}: {exc.strerror}") from None
        except ValueError:
            raise ConnectError(f"--rules {rules_file}: not JSON") from None
        if not isinstance(document, dict):
            raise ConnectError(f"--rules {rules_file}: not a saved GET /v1/flags answer")
        return spec.plan(rules_from_catalogue(document)), f"from {rules_file}"
    except RulesError as exc:
        where = f"--rules {rules_file}" if rules_file else "catalogue defaults"
        raise ConnectError(f"{where}: {exc}") from None


def _online_options(
    credentials: Path | None, code: str | None, broker: str | None
) -> tuple[AgencyCredentials, str]:
    missing = [
        name
        for name, value in (("--credentials", credentials), ("--code", code), ("--broker", broker))
        if value is None
    ]
    if missing:
        raise ConnectError(f"{', '.join(missing)} required to push (or use --dry-run)")
    assert credentials is not None  # noqa: S101 (checked just above)
    assert code is not None  # noqa: S101
    assert broker is not None  # noqa: S101
    parsed = httpx.URL(broker)
    if parsed.scheme != "https" or not parsed.host:
        raise ConnectError(
            f"--broker {broker}: must be an https:// URL (the broker speaks only mutual TLS)"
        )
    creds = AgencyCredentials.in_folder(credentials, code)
    for path, what in (
        (creds.certificate, "the agency's certificate"),
        (creds.key, "the agency's private key"),
        (creds.ca, "the hub's CA certificate"),
    ):
        if not path.is_file():
            raise ConnectError(
                f"--credentials {credentials}: no {path.name} ({what}); `matchhub agency add "
                f"{code} --out DIR` writes {code}.pem, {code}-key.pem and ca.pem"
            )
    return creds, broker.rstrip("/")


REJECTED_FLOOR = 10
"""The share guard ignores this many rejected rows: a share of a tiny extract is noise."""


def _check_rejections(evaluation: Evaluation, limit: float, target: Path) -> None:
    """Refuse to push an extract that is mostly rejected (e.g. the wrong column mapped as the
    ID): its snapshot would replace the last good one and clear everyone's flags."""
    rejected = evaluation.rejected_total
    if rejected > REJECTED_FLOOR and rejected > limit * evaluation.rows:
        share = evaluation.rejected_total / evaluation.rows
        raise ConnectError(
            f"{evaluation.path}: {share:.1%} of rows rejected (more than --max-rejected "
            f"{limit:.0%}); see {target / REJECTED_FILE}. Nothing was sent"
        )


def _evaluate(path: Path, plan: Plan, target: Path, show: bool) -> Evaluation:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConnectError(f"--extract {path}: {exc.strerror}") from None
    with _progress(show) as bars:
        task = bars.add_task("reading", total=size or 1, rows=0)

        def update(done: int, rows: int) -> None:
            bars.update(task, completed=done, rows=rows)

        try:
            return evaluate(path, plan, rejected_path=target / REJECTED_FILE, progress=update)
        except ExtractError as exc:
            raise ConnectError(str(exc)) from None


# --- talking to the broker ------------------------------------------------------------------------


class _Session:
    """The agency's mTLS connection to the broker, with failures explained in one line."""

    def __init__(self, base: str, creds: AgencyCredentials, code: str) -> None:
        self.base, self.creds, self.code = base, creds, code
        try:
            self.client = make_client(base, creds)
        except (ssl.SSLError, OSError) as exc:
            raise ConnectError(
                f"--credentials {creds.certificate.parent}: cannot load {creds.certificate.name}, "
                f"{creds.key.name} or {creds.ca.name}: {exc}"
            ) from None
        self.pusher = PushClient(self.client)
        self.whoami: dict[str, Any] = {}
        self.unasserted: list[str] = []

    def close(self) -> None:
        self.client.close()

    def get(self, path: str) -> dict[str, Any]:
        """GET a JSON document (the client's transport retries what a retry can fix)."""
        try:
            response = self.client.get(path)
        except httpx.TransportError as exc:
            raise ConnectError(self.explain(exc)[0]) from None
        if response.status_code != 200:
            raise ConnectError(
                f"the broker at {self.base} refused GET {path} for {self.creds.certificate} "
                f"(--credentials, --code): {_error_text(response)}"
            )
        document: dict[str, Any] = response.json()
        return document

    def connect(self, spec: Definition) -> None:
        """First contact (``GET /v1/whoami``): proves the TLS setup and checks the agency kind."""
        self.whoami = self.get("/v1/whoami")
        kind = self.whoami.get("kind")
        if kind != spec.kind.value:
            raise ConnectError(
                f"--definition {spec.path} is for {spec.kind.value} agencies, but the broker "
                f"knows {self.whoami.get('code')!r} (--credentials) as a {kind} agency"
            )

    def explain(self, exc: httpx.TransportError) -> tuple[str, bool]:
        """(one-line message naming the setting, whether a retry might help)."""
        cause = _ssl_cause(exc)
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"the broker at {self.base} presented a certificate that does not verify "
                f"against {self.creds.ca} (--credentials): {cause.verify_message}; check "
                "--broker and that ca.pem is the hub's CA",
                False,
            )
        if isinstance(cause, ssl.SSLError) or isinstance(
            exc, httpx.ReadError | httpx.RemoteProtocolError
        ):
            reason = getattr(cause, "reason", None) or type(exc).__name__
            return (
                f"the broker at {self.base} ended the TLS handshake ({reason}): it does not "
                f"accept {self.creds.certificate} (--credentials, --code); revoked, expired or "
                "not issued by this hub?",
                False,
            )
        if isinstance(exc, httpx.TimeoutException):
            return f"the broker at {self.base} did not answer in time (--broker)", True
        return f"cannot reach the broker at {self.base} (--broker): {_reason(exc)}", True

    def plan(self, spec: Definition) -> Plan:
        if spec.roster:
            return spec.plan({})
        document = self.get("/v1/flags")
        try:
            rules: dict[str, Rule] = rules_from_catalogue(document)
            self.unasserted = sorted(set(rules) - set(spec.flag_codes))
            return spec.plan(rules)
        except RulesError as exc:
            raise ConnectError(f"the broker's catalogue ({self.base}/v1/flags): {exc}") from None

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectError(self.explain(exc)[0]) from None


def _ssl_cause(exc: BaseException) -> BaseException | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _reason(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    return str(exc) or type(exc).__name__


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


class _Upload:
    """One push: open (or resume) the upload, send the chunks, commit, report."""

    def __init__(
        self,
        session: _Session,
        plan: Plan,
        evaluation: Evaluation,
        key: MatchingKey,
        report: Report,
        *,
        state_dir: Path,
    ) -> None:
        self.session, self.plan, self.evaluation = session, plan, evaluation
        self.key, self.report = key, report
        self.spec = plan.definition
        self.state = StateFile(state_dir, str(session.whoami["code"]), self.spec.kind.value)
        self.witness = make_witness(state_dir, str(session.whoami["code"]))
        report.key_version = key.version

    def run(self, wire_format: WireFormat, chunk_rows: int, as_of: date | None, show: bool) -> None:
        media_type = FORMATS[wire_format.value]
        tokeniser = Tokeniser(self.key, self.spec.scheme)
        digest = inputs_digest(
            definition=self.spec.sha256,
            extract=self.evaluation.sha256,
            scheme=self.spec.scheme.name,
            key_version=self.key.version,
            key_fingerprint=self.key.fingerprint,
            rules=self.plan.rules_fingerprint(),
            format=wire_format.value,
            chunk_rows=chunk_rows,
            max_chunk_bytes=MAX_CHUNK_BYTES,
            broker=self.session.base,
            agency=self.session.whoami.get("code"),
            as_of=as_of,
        )
        upload_id = self._resume_or_open(digest, as_of)
        if upload_id is None:
            return  # an earlier run committed these very inputs

        def chunks() -> Iterator[Chunk]:
            return wire_chunks(
                token_rows(self.evaluation, tokeniser),
                flag_codes=self.spec.flag_codes,
                media_type=media_type,
                chunk_rows=chunk_rows,
                roster=self.spec.roster,
            )

        self._send(upload_id, chunks, media_type, show)
        self.state.clear()

    def _resume_or_open(self, digest: str, as_of: date | None) -> str | None:
        pusher, report = self.session.pusher, self.report
        try:
            previous = self.state.read()
        except StateError as exc:
            raise ConnectError(str(exc)) from None
        if previous is not None:
            status = self._status(previous.upload_id)
            state = status.get("state") if status else "gone"
            if previous.digest == digest and state == "open":
                report.upload_id = previous.upload_id
                report.resumed_from_chunk = int(status["next_seq"]) if status else 0
                return previous.upload_id
            if previous.digest == digest and state == "committed":
                report.upload_id, report.state = previous.upload_id, "committed"
                report.notes.append("these inputs were committed by an earlier run")
                self.state.clear()
                return None
            if state == "open":  # a stale upload of other inputs: never complete it with these
                self.session.call(_abort_quietly, pusher, previous.upload_id)
                report.notes.append(f"aborted the stale upload {previous.upload_id}")
            self.state.clear()
        self.witness.before_push(self.session.client)
        kind = "roster" if self.spec.roster else "flags"
        try:
            opened = self.session.call(
                pusher.open,
                kind,
                self.key.version,
                list(self.spec.flag_codes),
                self.evaluation.to_send,
                as_of,
            )
        except PushError as exc:
            raise self._refused(exc, opening=True) from None
        upload_id = str(opened["id"])
        self.state.write(
            PushState(
                upload_id=upload_id,
                digest=digest,
                broker=self.session.base,
                key_version=self.key.version,
                rows=self.evaluation.to_send,
                opened_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
        )
        report.upload_id = upload_id
        return upload_id

    def _status(self, upload_id: str) -> dict[str, Any] | None:
        try:
            status: dict[str, Any] = self.session.call(self.session.pusher.status, upload_id)
        except PushError as exc:
            if exc.status == 404:
                return None
            raise self._refused(exc) from None
        return status

    def _send(
        self, upload_id: str, chunks: Callable[[], Iterator[Chunk]], media_type: str, show: bool
    ) -> None:
        report = self.report
        with _progress(show) as bars:
            task = bars.add_task("sending", total=self.evaluation.to_send or 1, rows=0)

            def sent(chunk: Chunk) -> None:
                report.rows_sent += chunk.rows
                report.chunks_sent += 1
                bars.update(task, advance=chunk.rows, rows=report.rows_sent)

            try:
                upload = self._send_and_commit(upload_id, chunks, media_type, sent).upload
            except (httpx.TransportError, PushError) as exc:
                # Whatever went wrong, ask first: the commit may have gone through with only
                # its answer lost. Never say "Nothing was committed" of a snapshot that was.
                committed = self._committed_after_all(upload_id)
                if committed is None:
                    raise self._failed(upload_id, exc) from None
                report.notes.append(
                    "the commit's answer was lost on the way; the broker holds the upload committed"
                )
                upload = committed
        report.state = str(upload.get("state", "committed"))
        outcome: WitnessOutcome = self.witness.after_commit(self.session.client, upload)
        report.witness = outcome.summary

    def _failed(self, upload_id: str, exc: httpx.TransportError | PushError) -> ConnectError:
        if isinstance(exc, httpx.TransportError):
            message, _ = self.session.explain(exc)
            return ConnectError(
                f"{message}; upload {upload_id} stays open: rerun the same command to resume"
            )
        if exc.status >= 500 or exc.status in TRANSIENT_STATUSES:
            # The broker is unwell or busy, not refusing these rows: keep the upload.
            return ConnectError(
                f"the broker answered {exc.status} {exc.code} after retries; upload "
                f"{upload_id} stays open: rerun the same command to resume"
            )
        self.session.call(_abort_quietly, self.session.pusher, upload_id)
        self.state.clear()
        return self._refused(exc)

    def _committed_after_all(self, upload_id: str) -> dict[str, Any] | None:
        """The upload, if a refusal came after it was committed: never tell the operator
        "Nothing was committed" about a snapshot that was."""
        with contextlib.suppress(PushError, ConnectError):
            status = self._status(upload_id)
            if status is not None and status.get("state") == "committed":
                return status
        return None

    def _send_and_commit(
        self,
        upload_id: str,
        chunks: Callable[[], Iterator[Chunk]],
        media_type: str,
        sent: Callable[[Chunk], None],
    ) -> PushResult:
        # chunks_sha256 is checked by whichever broker process takes the commit, so a broker
        # restart or another process between the chunks and the commit needs no re-send.
        return self.session.pusher.send(
            upload_id, chunks, media_type, self.evaluation.to_send, on_chunk=sent
        )

    def _refused(self, exc: PushError, *, opening: bool = False) -> ConnectError:
        self.report.state = f"refused: {exc.code}"
        if exc.code == "unknown_key_version":
            return ConnectError(
                f"--matching-key: the broker does not accept matching-key version "
                f"{self.key.version!r} ({exc.status} unknown_key_version); use the key of the "
                "current key ceremony. Nothing was committed"
            )
        what = "opening the upload" if opening else "the upload"
        return ConnectError(
            f"the broker refused {what}: {exc.status} {exc.code}: {exc.message}. "
            "Nothing was committed"
        )


def _abort_quietly(pusher: PushClient, upload_id: str) -> None:
    # Already finished or gone is fine: nothing of it is visible either way.
    with contextlib.suppress(PushError):
        pusher.abort(upload_id)


# --- the rules command ----------------------------------------------------------------------------


@app.command("rules")
def save_rules(
    definition: DefinitionOpt,
    credentials: CredentialsOpt = None,
    code: CodeOpt = None,
    broker: BrokerOpt = None,
    save: Annotated[
        Path | None, typer.Option("--out", help="Write the answer here (default: stdout).")
    ] = None,
) -> None:
    """Fetch the current rules of the definition's flags from the broker.

    The answer of `GET /v1/flags`, saved for `push --dry-run --rules FILE` offline.
    """
    spec = _load_definition(definition)
    creds, base = _online_options(credentials, code, broker)
    session = _Session(base, creds, code or "")
    try:
        session.connect(spec)
        document = session.get("/v1/flags")
        session.plan(spec)  # the rules must apply to this definition
    finally:
        session.close()
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if save is None:
        sys.stdout.write(text)
    else:
        save.write_text(text, encoding="utf-8")
        err.print(f"saved the rules of {len(document.get('flags', []))} flags to {save}")


# --- entry points ---------------------------------------------------------------------------------


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(bar_width=24),
        TextColumn("{task.percentage:>3.0f}%"),
        _RowRate(),
        TimeElapsedColumn(),
        console=err,
        disable=not enabled,
        transient=False,
    )


class _RowRate(ProgressColumn):
    """Rows done and rows per second (the bar itself may count bytes)."""

    def render(self, task: Task) -> Text:
        rows = int(task.fields.get("rows", 0))
        elapsed = task.elapsed or 0.0
        rate = rows / elapsed if elapsed > 0 else 0.0
        return Text(f"{rows:>12,} rows {rate:>10,.0f} rows/s")


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` and return the exit status (0 on success)."""
    try:
        return invoke(app, argv, "matchhub-connect")
    except typer.Abort:
        err.print("aborted")
        return 130
    except (ConnectError, WitnessError) as exc:
        err.print(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        err.print("interrupted; rerun the same command to resume an open upload")
        return 130


def main() -> None:
    """The ``matchhub-connect`` console script."""
    sys.exit(run())


if __name__ == "__main__":
    main()
