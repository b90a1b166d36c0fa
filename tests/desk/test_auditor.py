"""The auditor's console: a desk set up with an auditor agency's certificate (no roster), on a
real broker over mutual TLS whose log holds four staff members of the ministry
looking people up, one of them far more than the others, and a refused request.

Over HTTP: the witness's alarm after the broker's database is restored from an older copy,
bad filters, periods, IDs and tokens refused with a message and nothing sent, and a caseworker
refused every page. In chromium: the auditor's whole round (screenshots under
``tests/artifacts/desk/<backend>/auditor/``)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from matchhub.agency.connector.push import push
from matchhub.agency.desk import auditpdf
from matchhub.agency.desk.accounts import new_pseudonym
from matchhub.agency.desk.config import DeskConfig
from matchhub.agency.desk.models import Event
from matchhub.agency.desk.service import Desk
from matchhub.protocol.kinds import AgencyKind
from tests.conftest import RunningServer
from tests.desk.conftest import ARTIFACTS, PASSWORD, run_cli, serving
from tests.desk.test_browser import Shots, _sign_in
from tests.e2e.helpers import national_ids, tokens
from tests.fixtures.cli import OperatorCli

PURPOSE = "eligibility_review"
# Checkpoints are signed on the broker's schedule, never for a request: often, here, so each
# step of a test has one to witness.
pytestmark = pytest.mark.settings(audit_checkpoint_every=4)
AUDIT_PAGES = ("/audit", "/audit/entries", "/audit/person", "/audit/anomalies", "/audit/report")


@dataclass
class Office:
    server: RunningServer
    home: Path
    ids: list[str]
    toks: dict[str, str]
    heavy: str
    peers: list[str]

    def desk(self) -> Desk:
        return Desk(DeskConfig.load(self.home))


def _lookup(client: httpx.Client, end_user: str, toks: list[str]) -> None:
    response = client.post(
        "/v1/lookups",
        json={"purpose": PURPOSE, "tokens": toks},
        headers={"Matchhub-End-User": end_user},
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def office(server: RunningServer, tmp_path: Path, database_url: str | None) -> Office:
    hub = server.hub
    key = hub.matching_key()
    key_file = tmp_path / "ceremony" / "matching-key.json"
    key_file.parent.mkdir()
    key.to_file(key_file)
    hub.add_agency("molsa", AgencyKind.welfare)
    board = hub.add_agency("audit-board", AgencyKind.auditor)
    ids = national_ids(40, seed=16)
    toks = tokens(key, ids)
    heavy, peers = new_pseudonym(), [new_pseudonym() for _ in range(3)]
    with server.client("molsa") as client:
        push(
            client,
            kind="roster",
            key_version=key.version,
            flags=[],
            rows=[(t, []) for t in toks.values()],
        )
        for i in range(30):  # the heavy user: thirty people
            _lookup(client, heavy, [toks[ids[i]]])
        for n, peer in enumerate(peers):  # each peer: two people, the first one shared
            _lookup(client, peer, [toks[ids[0]], toks[ids[31 + n]]])
        refused = client.post(
            "/v1/lookups",
            json={"purpose": "curiosity", "tokens": [toks[ids[1]]]},
            headers={"Matchhub-End-User": peers[0]},
        )
        assert refused.status_code == 422
    home = tmp_path / "audit-desk"
    args = ["init", "--broker", server.url, "--credentials", str(board.certificate.parent)]
    args += ["--code", "audit-board", "--matching-key", str(key_file)]
    if database_url is not None:
        args += ["--database-url", database_url]
    assert run_cli(home, *args) == 0
    for name, role in (("omar.salih", "auditor"), ("huda.kareem", "caseworker")):
        assert (
            run_cli(
                home, "user", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD + "\n"
            )
            == 0
        )
    return Office(server, home, ids, toks, heavy, peers)


@contextmanager
def signed_in(office: Office, name: str) -> Iterator[httpx.Client]:
    desk = office.desk()
    try:
        with serving(desk) as url, httpx.Client(base_url=url) as client:
            form = client.get("/login")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token
            client.post("/login", data={"name": name, "password": PASSWORD, "csrf": token.group(1)})
            yield client
    finally:
        desk.close()


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def _audit_size(office: Office) -> int:
    with office.server.hub.session() as session:
        return int(session.execute(text("SELECT size FROM audit_state")).scalar_one())


def test_a_caseworker_reaches_none_of_the_auditors_pages(office: Office) -> None:
    with signed_in(office, "huda.kareem") as client:
        for path in (*AUDIT_PAGES, "/audit/report.pdf"):
            assert client.get(path).status_code == 403, path
        home = client.get("/")
        assert (
            client.post(
                "/audit/person", data={"who": office.ids[0], "csrf": _csrf(home)}
            ).status_code
            == 403
        )


def test_bad_filters_periods_ids_and_tokens_get_a_message_and_reach_no_broker(
    office: Office,
) -> None:
    bad = {
        "/audit/entries?from=2026-13-01": "Not a date",
        "/audit/entries?from=2026-12-05&to=2026-12-01": "starts after it ends",
        "/audit/entries?agency=a%20b": "Not an agency code",
        "/audit/entries?end_user=Robert');": "pseudonym",
        "/audit/entries?outcome=maybe": "Unknown outcome",
        "/audit/entries?error=DROP%20TABLE": "Not an error code",
        "/audit/entries?after=-3": "page position",
        "/audit/anomalies?from=2020-01-01&to=2026-12-01": "longer than allowed",
        "/audit/report?from=yesterday": "Not a date",
        "/audit/report.pdf?to=2026-02-30": "Not a date",
    }
    with signed_in(office, "omar.salih") as client:
        home = client.get("/audit")
        client.post("/language", data={"language": "en", "csrf": _csrf(home), "back": "/audit"})
        for path, words in bad.items():
            client.get("/audit")  # the witness's own reads are not what is counted below
            before = _audit_size(office)
            page = client.get(path)
            assert page.status_code == 422, path
            assert words in page.text, path
            # The page's witness asks for the checkpoint (one entry); the filter is never sent.
            assert _audit_size(office) - before <= 2, path
            assert "/v1/audit/entries" not in _last_routes(office, _audit_size(office) - before)
        for typed, words in (
            ("12345", "Not a valid national ID"),
            ("ab" * 31 + "zz", "Not a valid national ID"),
            ("ab" * 33, "exactly 64 hexadecimal"),
        ):
            page = client.post("/audit/person", data={"who": typed, "csrf": _csrf(home)})
            assert page.status_code == 422, typed
            assert words in page.text, typed


def _last_routes(office: Office, count: int) -> list[str]:
    with office.server.hub.session() as session:
        rows = session.execute(
            text("SELECT route FROM audit_entries ORDER BY seq DESC LIMIT :n"), {"n": count}
        )
        return [r[0] for r in rows]


def test_the_log_restored_from_an_older_copy_raises_an_alarm_that_stays(
    office: Office, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend != "sqlite":
        pytest.skip(
            "the restore is a copy of the SQLite file; PostgreSQL's restore drills "
            "are deploy's (tests/e2e)"
        )
    live = Path(office.server.hub.settings.sqlalchemy_url.removeprefix("sqlite:///"))
    older = tmp_path / "older.db"
    with closing(sqlite3.connect(live)) as source, closing(sqlite3.connect(older)) as copy:
        source.backup(copy)
    with signed_in(office, "omar.salih") as client:
        first = client.get("/audit").text
        assert 'id="verified"' in first
        with office.server.client("molsa") as molsa:
            for _ in range(12):
                _lookup(molsa, office.heavy, [office.toks[office.ids[5]]])
        grown = client.get("/audit")
        assert 'id="verified"' in grown.text
        assert _verified_size(grown.text) > _verified_size(first)
        # The broker's database is restored from the older copy: the log rolls back.
        with closing(sqlite3.connect(older)) as source, closing(sqlite3.connect(live)) as target:
            source.backup(target)
        alarmed = client.get("/audit/entries")
        assert 'id="alarm"' in alarmed.text
        assert "rolled back" in alarmed.text or "تراجع السجل" in alarmed.text
        again = client.get("/audit")
        assert 'id="alarm"' in again.text  # it does not go away by itself
        _alarm_in_a_browser(request, str(client.base_url).rstrip("/"))
        alarm = re.search(r'name="alarm" value="(\d+)"', again.text)
        assert alarm
        short = client.post(
            "/audit",
            data={
                "action": "acknowledge",
                "alarm": alarm.group(1),
                "reason": "ok",
                "csrf": _csrf(again),
            },
        )
        assert short.status_code == 422
        assert 'id="alarm"' in client.get("/audit").text
        client.post(
            "/audit",
            data={
                "action": "acknowledge",
                "alarm": alarm.group(1),
                "reason": "restored from the 06:00 backup; operator's ticket 4411",
                "csrf": _csrf(again),
            },
        )
        assert 'id="alarm"' not in client.get("/audit").text
    desk = office.desk()
    try:
        with desk.db.transaction() as session:
            actions = [e.action for e in session.scalars(select(Event).order_by(Event.id))]
    finally:
        desk.close()
    assert "audit.alarm" in actions
    assert actions.count("audit.alarm_acknowledged") == 1


def _verified_size(page: str) -> int:
    found = re.search(r'id="verified">[^<]*?([٠-٩٬]+)', page)
    assert found, "the page says what it verified"
    return int(found.group(1).replace("٬", "").translate(str.maketrans("٠١٢٣٤٥٦٧٨٩", "0123456789")))


def _alarm_in_a_browser(request: pytest.FixtureRequest, url: str) -> None:
    chromium = request.getfixturevalue("browser")
    page = chromium.new_page()
    try:
        _sign_in(page, url, "omar.salih")
        page.goto(f"{url}/audit")
        assert page.locator("#alarm").count() == 1
        assert page.locator("#verified").count() == 0
        Shots(ARTIFACTS / "sqlite" / "auditor").take(page, "auditor-alarm-ar")
    finally:
        page.close()


def test_the_auditors_round_in_a_browser(office: Office, request: pytest.FixtureRequest) -> None:
    chromium = request.getfixturevalue("browser")  # conftest.py's: Debian's chromium
    backend = "postgresql" if "postgresql" in request.node.name else "sqlite"
    shots = Shots(ARTIFACTS / backend / "auditor")
    desk = office.desk()
    before = _audit_size(office)
    try:
        with serving(desk) as url:
            context = chromium.new_context(accept_downloads=True, locale="ar-IQ")
            page = context.new_page()
            _sign_in(page, url, "omar.salih")
            page.goto(f"{url}/audit")
            assert page.locator("#verified").count() == 1
            shots.take(page, "auditor-witness-ar")

            # Entries, filtered: the refused request alone.
            page.goto(f"{url}/audit/entries")
            page.select_option("#f-outcome", "refused")
            page.fill("#f-agency", "molsa")
            page.click("#apply")
            rows = page.locator("#entries tbody tr")
            assert rows.count() == 1
            assert (
                "invalid_purpose" in rows.first.inner_text() or "purpose" in rows.first.inner_text()
            )
            shots.take(page, "auditor-entries-ar")

            # One person's trail, from the national ID (hashed at the desk).
            page.goto(f"{url}/audit/person")
            page.fill("#who", office.ids[0])
            page.click("#trail-submit")
            assert page.inner_text("#accesses") == "٤"  # the heavy user and the three peers
            assert office.ids[0] not in page.content()
            assert office.toks[office.ids[0]] not in page.content()
            shots.take(page, "auditor-person-ar")

            # The anomalies: the heavy user is listed, with the reasoning.
            page.goto(f"{url}/audit/anomalies")
            heavy = page.inner_text("#heavy")
            assert office.heavy in heavy
            assert not any(peer in heavy for peer in office.peers)
            assert page.locator("svg.chart").count() == 3
            assert page.locator("#widely").inner_text().count("du-") >= 3
            shots.take(page, "auditor-anomalies-ar")

            # The report, printable, and its PDF.
            page.goto(f"{url}/audit/report")
            shots.take(page, "auditor-report-ar")
            with page.expect_download() as caught:
                page.click("#pdf")
            pdf = Path(caught.value.path()).read_bytes()
            assert pdf.startswith(b"%PDF")
            (shots.folder / "auditor-report-ar.pdf").write_bytes(pdf)

            # In English too.
            page.click("header form[action='/language'] button")
            page.goto(f"{url}/audit/anomalies")
            assert page.evaluate("getComputedStyle(document.documentElement).direction") == "ltr"
            shots.take(page, "auditor-anomalies-en")
            with page.expect_download() as caught:
                page.goto(f"{url}/audit/report")
                page.click("#pdf")
            (shots.folder / "auditor-report-en.pdf").write_bytes(
                Path(caught.value.path()).read_bytes()
            )
            context.close()
    finally:
        desk.close()
    # Nothing the auditor did changed the log beyond the entries of the desk's own reads.
    with office.server.hub.session() as session:
        rows = session.execute(
            text("SELECT agency, route, body FROM audit_entries WHERE seq >= :s"), {"s": before}
        ).all()
    assert rows
    assert {r[0] for r in rows} == {"audit-board"}
    assert all(r[1].startswith("/v1/audit/") and '"method":"GET"' in r[2] for r in rows)
    # The trail was asked by token: neither the ID nor the token is in the broker's log.
    person = office.ids[0]
    assert not any(person in r[2] or office.toks[person] in r[2] for r in rows)


def test_an_export_is_verified_offline_from_the_page_and_an_edit_is_caught(
    office: Office, operator_cli: OperatorCli, tmp_path: Path
) -> None:
    hub = office.server.hub
    with signed_in(office, "omar.salih") as client:
        page = client.get("/audit")  # the witness accepts (and pins the key) first
        export = tmp_path / "export"
        ran = operator_cli(
            hub.settings.home,
            "audit",
            "export",
            "--out",
            str(export),
            env={"MATCHHUB_DATABASE_URL": hub.settings.database_url or ""},
        )
        assert ran.returncode == 0, ran.stderr

        def verify(entries: bytes) -> httpx.Response:
            files = {
                "entries": ("entries.jsonl", entries),
                "checkpoints": ("checkpoints.jsonl", (export / "checkpoints.jsonl").read_bytes()),
            }
            return client.post("/audit/verify", data={"csrf": _csrf(page)}, files=files)

        good = verify((export / "entries.jsonl").read_bytes())
        assert good.status_code == 200
        assert 'id="verification"' in good.text
        assert "notice ok" in good.text.split('id="verification"')[0].rsplit("<p", 1)[1]
        lines = (export / "entries.jsonl").read_bytes().splitlines(keepends=True)
        edited = lines[1].replace(b"molsa", b"mols4", 1) if b"molsa" in lines[1] else b""
        bad = verify(b"".join([lines[0], edited or lines[2], *lines[2:]]))
        assert bad.status_code == 422
        assert "does not verify" in bad.text or "لا تجتاز التحقق" in bad.text
        missing = client.post("/audit/verify", data={"csrf": _csrf(page)})
        assert missing.status_code == 422


def test_init_tells_a_ministrys_desk_from_an_audit_offices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credentials = tmp_path / "certs"
    credentials.mkdir()
    for name in ("audit-board.pem", "audit-board-key.pem", "ca.pem"):
        (credentials / name).write_text("TEST-ONLY\n")
    extract = tmp_path / "roster.csv"
    extract.write_text("a,b\n")
    args = ["init", "--broker", "https://127.0.0.1:1", "--credentials", str(credentials)]
    args += ["--code", "audit-board"]
    # An extract without a matching key and a definition is half a ministry's desk: refused.
    assert run_cli(tmp_path / "half", *args, "--extract", str(extract)) == 1
    assert "needs --matching-key, --definition and --extract" in capsys.readouterr().err
    assert not (tmp_path / "half").exists()
    # Without an extract: an audit office's console, holding no key and no roster.
    assert run_cli(tmp_path / "office", *args) == 0
    config = DeskConfig.load(tmp_path / "office")
    assert config.kind == "auditor"
    assert not config.matching_key.exists()
    assert not config.extract.exists()
    desk = Desk(config)
    try:
        assert not desk.has_key
    finally:
        desk.close()


def test_a_desk_without_an_arabic_font_says_so_instead_of_a_500(
    office: Office, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auditpdf, "FONT_DIRS", ())
    with signed_in(office, "omar.salih") as client:
        client.get("/audit")
        response = client.get("/audit/report.pdf")
    assert response.status_code == 503
    assert 'id="message"' in response.text
    assert "fonts-noto-core" in response.text
