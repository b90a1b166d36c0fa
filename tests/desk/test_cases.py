"""The desk's case work (casework.py) on its own database, with the broker's case API faked
at the edge (fake_broker.py): assignment, the steps, what is sent, what stays, what stands out.
The same flow runs against the real broker in the browser test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from matchhub.agency.desk import accounts, casework, i18n
from matchhub.agency.desk.accounts import Role, Staff
from matchhub.agency.desk.casework import CaseError
from matchhub.agency.desk.config import DeskConfig
from matchhub.agency.desk.models import Base, Case, CaseNote, Match, Roster
from matchhub.agency.desk.resolve import Parsed, Source, resolve
from matchhub.agency.desk.roster import RosterIndex, build
from matchhub.agency.desk.service import Desk
from matchhub.keystore import pki
from matchhub.protocol.tokens import MatchingKey
from matchhub.synth.extracts import generate
from tests.desk.conftest import CONNECTORS, REPO, run_cli, serving
from tests.desk.fake_broker import FakeBroker
from tests.desk.test_pages import csrf
from tests.pki import write_credentials

KEY = MatchingKey("test-v1", b"k" * 32)
PASSWORD = "correct horse battery"
SOURCES = [
    Source("bank.large_loan", "bank", "2026-11-30"),
    Source("pension.recipient", "pension", "2026-12-01"),
]


@dataclass
class Office:
    desk: Desk
    broker: FakeBroker
    index: RosterIndex
    match: int
    people: dict[str, Staff]


@pytest.fixture
def office(tmp_path: Path, database_url: str | None) -> Iterator[Office]:
    ca = pki.create_ca("TEST-ONLY hub")
    creds = write_credentials(
        tmp_path / "creds",
        "molsa",
        pki.issue_client(ca, "TEST-ONLY hub", "molsa", "TEST-ONLY ministry"),
        pki.cert_pem(ca.certificate),
    )
    KEY.to_file(tmp_path / "key.json")
    generate(80, 5, tmp_path / "data")
    home = tmp_path / "desk"
    args = ["init", "--broker", "https://broker.test", "--code", "molsa"]
    args += ["--credentials", str(creds.certificate.parent)]
    args += ["--matching-key", str(tmp_path / "key.json")]
    args += ["--definition", str(CONNECTORS / "welfare.toml")]
    args += ["--extract", str(tmp_path / "data" / "welfare.csv")]
    if database_url is not None:
        args += ["--database-url", database_url]
    assert run_cli(home, *args) == 0
    desk = Desk(DeskConfig.load(home))
    broker = FakeBroker()
    desk.broker_transport = broker.transport()
    built = build(desk.config.extract, desk.definition, KEY, desk.config.rosters / "1")
    people: dict[str, Staff] = {}
    with desk.db.transaction() as session:
        session.add(Roster(state="current", stage="done", started_by="t", version=1, counts={}))
        session.add(
            Match(state="ready", purpose="eligibility_review", started_by="t", job_id="job-1")
        )
        for name, role in (
            ("sara.jabbar", Role.supervisor),
            ("huda.kareem", Role.caseworker),
            ("zaid.latif", Role.caseworker),
            ("ali.hassan", Role.analyst),
        ):
            people[name] = Staff.of(accounts.add_user(session, name, role, PASSWORD))
    with desk.db.transaction() as session:
        match = session.get(Match, 1)
        assert match is not None
        match.roster_version = 1
    index = desk.index(1)
    # The match found the first six people on the roster: a loan for all, a pension for two.
    tokens = b"".join(bytes(index.tokens[row]) for row in range(6))
    resolve(Parsed(tokens, [1, 1, 3, 1, 3, 1], SOURCES), index, {}, desk.match_folder(1))
    assert built.people >= 6
    yield Office(desk, broker, index, 1, people)
    desk.close()


def test_from_a_match_list_to_an_upheld_decision_sending_only_tokens_and_codes(
    office: Office,
) -> None:
    desk, broker, staff = office.desk, office.broker, office.people
    listed = casework.listed(desk, office.match)
    assert [entry.position for entry in listed] == list(range(6))
    opened = casework.open_from_match(desk, staff["ali.hassan"], office.match, [0, 2])
    assert len(opened.opened) == 2
    # Opening again skips the people who have an open case.
    again = casework.open_from_match(desk, staff["ali.hassan"], office.match, [0, 1])
    assert (len(again.opened), again.skipped) == (1, 1)
    sent = [r for r in broker.sent if r.url.path == "/v1/cases"]
    assert all(r.read().startswith(b'{"token":"') for r in sent)
    tokens = {bytes(office.index.tokens[row]).hex() for row in (0, 1, 2)}
    assert {c["flags"][0]["code"] for c in broker.cases.values()} == {"bank.large_loan"}
    assert tokens <= set(broker.bodies().split('"'))
    first, second = opened.opened
    person = office.index.person(2)
    for value in person.values():  # the name, IDs and governorate never go
        assert value not in broker.bodies()

    casework.assign(desk, staff["sara.jabbar"], [first, second], "huda.kareem")
    huda = staff["huda.kareem"]
    casework.move(desk, huda, second, "verifying")
    casework.move(desk, huda, second, "confirmed")
    casework.move(desk, huda, second, "notified")
    letter = casework.notice(desk, huda, second)
    assert letter.person["name"] == person["name"]
    assert letter.response_due == broker.now + timedelta(days=30)
    assert {f["code"] for f in letter.flags} == {"bank.large_loan", "pension.recipient"}

    # An adverse decision before the response is due: the broker's refusal, nothing changed.
    with pytest.raises(CaseError) as refused:
        casework.move(desk, huda, second, "decided", "upheld")
    assert refused.value.code == "response_not_due"
    assert casework.view(desk, huda, second).case.state == "notified"
    # Time passes (the fake broker's clock): the case stands out as overdue, then is decided.
    broker.now += timedelta(days=31)
    queue = casework.queue(desk, state="open", now=broker.now)
    assert (queue[0].case.id, queue[0].attention) == (second, "overdue")
    # The order is the database's: the first page of one is the overdue case, then the rest.
    assert [v.case.id for v in casework.queue(desk, now=broker.now, limit=1)] == [second]
    rest = casework.queue(desk, now=broker.now, offset=1, limit=10)
    assert [v.case.id for v in rest] == sorted(set(opened.opened + again.opened) - {second})[::-1]
    casework.move(desk, huda, second, "decided", "upheld")
    casework.move(desk, huda, second, "closed")
    shown = casework.view(desk, huda, second)
    assert (shown.case.state, shown.case.reason) == ("closed", "upheld")
    assert [s["to"] for s in shown.history] == [
        "indication",
        "verifying",
        "confirmed",
        "notified",
        "decided",
        "closed",
    ]
    assert {s["by"] for s in shown.history} == {"ali.hassan", "huda.kareem"}
    # Every request named its member of staff by pseudonym, never by name.
    pseudonyms = {s.pseudonym for s in staff.values()}
    assert {r.headers["matchhub-end-user"] for r in broker.sent} <= pseudonyms
    assert "huda" not in broker.bodies()
    # The tokens went to the broker and nowhere else: no table of the desk holds one.
    assert not _tokens_stored(desk, {bytes(t).hex() for t in office.index.tokens})


def _tokens_stored(desk: Desk, tokens: set[str]) -> set[str]:
    found: set[str] = set()
    with desk.db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(table.select()):
                found |= {t for t in tokens if t in str(tuple(row))}
    return found


def test_a_caseworker_moves_only_the_cases_assigned_to_them(office: Office) -> None:
    desk, broker, staff = office.desk, office.broker, office.people
    (number,) = casework.open_from_match(desk, staff["ali.hassan"], office.match, [3]).opened
    # Unassigned: no caseworker may move it; assigned to huda: zaid still may not.
    with pytest.raises(CaseError) as refused:
        casework.move(desk, staff["huda.kareem"], number, "verifying")
    assert refused.value.code == "not_yours"
    casework.assign(desk, staff["sara.jabbar"], [number], "huda.kareem")
    before = len(broker.sent)
    with pytest.raises(CaseError) as refused:
        casework.move(desk, staff["zaid.latif"], number, "verifying")
    assert refused.value.code == "not_yours"
    assert len(broker.sent) == before  # refused at the desk: nothing asked of the broker
    # Only a supervisor assigns, and only to someone who may do casework.
    with pytest.raises(CaseError) as refused:
        casework.assign(desk, staff["huda.kareem"], [number], "zaid.latif")
    assert refused.value.code == "forbidden"
    with pytest.raises(CaseError) as refused:
        casework.assign(desk, staff["sara.jabbar"], [number], "ali.hassan")
    assert refused.value.code == "not_a_caseworker"
    # The analyst opens cases but moves none; the supervisor moves any.
    with pytest.raises(CaseError):
        casework.move(desk, staff["ali.hassan"], number, "verifying")
    casework.move(desk, staff["sara.jabbar"], number, "verifying")
    casework.move(desk, staff["huda.kareem"], number, "refuted", "not_the_person")
    with pytest.raises(CaseError) as refused:
        casework.move(desk, staff["huda.kareem"], number, "refuted", "no such reason")
    assert refused.value.code == "invalid_reason"
    assert casework.view(desk, staff["huda.kareem"], number).case.reason == "not_the_person"


def test_the_queue_filters_and_shows_what_is_lapsing_and_notes_stay_here(office: Office) -> None:
    desk, broker, staff = office.desk, office.broker, office.people
    opened = casework.open_from_match(desk, staff["sara.jabbar"], office.match, range(6)).opened
    assert len(opened) == 6
    pension = casework.queue(desk, flag="pension.recipient")
    assert sorted(v.case.id for v in pension) == sorted(opened[i] for i in (2, 4))
    where = office.index.person(0)["governorate"]
    in_place = casework.queue(desk, governorate=where)
    assert in_place
    assert all(v.person and v.person["governorate"] == where for v in in_place)
    assert casework.queue(desk, state="verifying") == []
    # Twelve days on, the indications lapse within the week: they stand out.
    soon = broker.now + timedelta(days=12)
    assert {v.attention for v in casework.queue(desk, now=soon)} == {"lapsing"}
    # Before the lapse the desk asks the broker nothing; past it, once, and follows.
    asked = len(broker.sent)
    assert casework.refresh(desk, staff["sara.jabbar"], now=soon) == 0
    assert len(broker.sent) == asked
    broker.now += timedelta(days=15)
    assert casework.refresh(desk, staff["sara.jabbar"], now=broker.now) == 6
    assert len(broker.sent) == asked + 1
    assert {v.case.state for v in casework.queue(desk)} == {"lapsed"}
    with pytest.raises(CaseError) as refused:
        casework.move(desk, staff["sara.jabbar"], opened[0], "verifying")
    assert refused.value.code == "case_lapsed"
    # A note is the desk's alone.
    text = "Visited the household on Sunday; the neighbour says they moved to Basra."
    casework.add_note(desk, staff["huda.kareem"], opened[0], text)
    with desk.db.transaction() as session:
        assert [n.text for n in session.query(CaseNote)] == [text]
        assert session.query(Case).count() == 6
    assert "Basra" not in broker.bodies()
    with pytest.raises(CaseError):
        casework.add_note(desk, staff["huda.kareem"], opened[0], "   ")


HEX64 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


def _signed_in(url: str, name: str) -> httpx.Client:
    client = httpx.Client(base_url=url, follow_redirects=True)
    form = client.get("/login")
    client.post("/login", data={"name": name, "password": PASSWORD, "csrf": csrf(form)})
    return client


def test_the_case_pages_refuse_another_caseworker_and_show_no_token(office: Office) -> None:
    desk, staff = office.desk, office.people
    pages: list[str] = []
    with serving(desk) as url:
        sara, huda, zaid = (
            _signed_in(url, n) for n in ("sara.jabbar", "huda.kareem", "zaid.latif")
        )
        listing = sara.get(f"/cases/from-match/{office.match}")
        pages.append(listing.text)
        assert office.index.person(4)["name"] in listing.text
        opened = sara.post(
            f"/cases/from-match/{office.match}", data={"csrf": csrf(listing), "pick": ["4", "5"]}
        )
        assert opened.url.path == "/cases"
        pages.append(opened.text)
        # Again, with one new: the two are skipped, and the broker's refusal is said.
        office.broker.refusing = "results_expired"
        again = sara.post(
            f"/cases/from-match/{office.match}",
            data={"csrf": csrf(listing), "pick": ["3", "4", "5"]},
        )
        office.broker.refusing = None
        assert 'id="skipped"' in again.text
        assert "حُذفت نتائج هذه المطابقة" in again.text
        numbers = sorted(int(n) for n in re.findall(r'name="case" value="(\d+)"', opened.text))
        assigned = sara.post(
            "/cases/assign", data={"csrf": csrf(opened), "case": numbers, "to": "huda.kareem"}
        )
        assert "تم إسناد الحالات" in assigned.text
        case_url = f"/cases/{numbers[0]}"
        page = zaid.get(case_url)
        assert 'id="not-yours"' in page.text
        refused = zaid.post(case_url, data={"csrf": csrf(page), "to": "verifying"})
        assert refused.status_code == 409
        assert "مسندة إلى باحث آخر" in refused.text
        page = huda.get(case_url)
        for to in ("verifying", "confirmed", "notified"):
            page = huda.post(case_url, data={"csrf": csrf(page), "to": to})
            assert page.status_code == 200, page.text
            pages.append(page.text)
        letter = huda.get(f"{case_url}/notice")
        pages.append(letter.text)
        assert office.index.person(4)["name"] in letter.text
        assert 'lang="ar" dir="rtl"' in letter.text
        assert 'lang="en" dir="ltr"' in letter.text
        early = huda.post(case_url, data={"csrf": csrf(page), "to": "decided", "reason": "upheld"})
        assert early.status_code == 409
        assert "قبل انتهاء مدة الرد" in early.text
        noted = huda.post(case_url, data={"csrf": csrf(page), "action": "note", "text": "زرناه"})
        assert "زرناه" in noted.text
        pages += [huda.get("/cases").text, sara.get("/cases?state=all").text]
        rates = huda.get("/cases/rates")
        pages.append(rates.text)
        assert rates.status_code == 200
        assert 'class="num rate">١٠٠' in rates.text  # the one verification: confirmed
        for client in (sara, huda, zaid):
            client.close()
    assert casework.view(desk, staff["huda.kareem"], numbers[0]).case.state == "notified"
    tokens = {bytes(office.index.tokens[row]).hex() for row in range(len(office.index.tokens))}
    for html in pages:
        assert not set(HEX64.findall(html)) & tokens
        assert not HEX64.findall(html)


def test_a_case_from_a_lookup_names_the_lookup_and_is_its_caseworkers(office: Office) -> None:
    desk, broker, staff = office.desk, office.broker, office.people
    huda = staff["huda.kareem"]
    flags = [{"code": "bank.large_loan", "source": "bank", "as_of": "2026-11-30"}]
    with pytest.raises(CaseError) as refused:  # a lookup the broker did not name
        casework.open_from_lookup(desk, huda, audit_seq=None, version=1, row=3, flags=flags)
    assert refused.value.code == "no_lookup"
    with pytest.raises(CaseError) as refused:  # a flag the ministry is not granted
        casework.open_from_lookup(
            desk, huda, audit_seq=7, version=1, row=3, flags=[{**flags[0], "code": "x.y"}]
        )
    assert refused.value.code == "invalid_flags"
    assert not broker.cases
    number = casework.open_from_lookup(desk, huda, audit_seq=7, version=1, row=3, flags=flags)
    opened = next(r for r in broker.sent if r.url.path == "/v1/cases")
    assert b'"lookup":7' in opened.content
    assert bytes(office.index.tokens[3]).hex().encode() in opened.content
    shown = casework.view(desk, huda, number)
    assert shown.assignee == "huda.kareem"
    assert shown.person == office.index.person(3)
    # The same person again: the open case, not a second one.
    again = casework.open_from_lookup(desk, huda, audit_seq=8, version=1, row=3, flags=flags)
    assert again == number
    assert len(broker.cases) == 1


def test_a_case_the_broker_opened_but_the_desk_never_recorded_is_adopted(office: Office) -> None:
    """The desk stopped between the broker's answer and its own record: opening again finds
    the broker's open case (409 case_exists) and records that one; nothing is opened twice."""
    desk, broker, staff = office.desk, office.broker, office.people
    with desk.broker(staff["sara.jabbar"]) as client:
        lost = client.open_case(
            token=bytes(office.index.tokens[5]).hex(), flags=["bank.large_loan"], job="job-1"
        )
    opened = casework.open_from_match(desk, staff["sara.jabbar"], office.match, [5])
    assert len(opened.opened) == 1
    assert len(broker.cases) == 1
    assert casework.view(desk, staff["sara.jabbar"], opened.opened[0]).case.broker_id == lost["id"]
    again = casework.open_from_match(desk, staff["sara.jabbar"], office.match, [5])
    assert (again.opened, again.skipped) == ([], 1)


def test_bad_case_forms_get_a_clear_refusal_and_change_nothing(office: Office) -> None:
    desk, broker, staff = office.desk, office.broker, office.people
    (number,) = casework.open_from_match(desk, staff["sara.jabbar"], office.match, [0]).opened
    before = (len(broker.sent), _rows(desk))
    with serving(desk) as url:
        sara, huda = (_signed_in(url, n) for n in ("sara.jabbar", "huda.kareem"))
        token = csrf(sara.get("/cases"))
        refused = {
            "/cases/assign": sara.post(
                "/cases/assign", data={"csrf": token, "case": [str(number)], "to": "nobody"}
            ),
            "no case chosen": sara.post("/cases/assign", data={"csrf": token, "to": "huda.kareem"}),
            "unknown step": sara.post(f"/cases/{number}", data={"csrf": token, "to": "bogus"}),
            "refuted without reason": sara.post(
                f"/cases/{number}", data={"csrf": token, "to": "refuted"}
            ),
            "no such beneficiary": sara.post(
                f"/cases/from-match/{office.match}", data={"csrf": token, "pick": "999"}
            ),
            "nothing picked": sara.post(
                f"/cases/from-match/{office.match}", data={"csrf": token, "pick": "x"}
            ),
            "lookup form tampered": sara.post(
                "/cases/from-lookup",
                data={"csrf": token, "version": "1", "row": "x", "seq": "3", "flag": "a|b|c"},
            ),
            "no csrf": sara.post(f"/cases/{number}", data={"to": "verifying"}),
            "caseworker assigns": huda.post(
                "/cases/assign",
                data={"csrf": csrf(huda.get("/cases")), "case": [str(number)], "to": "huda.kareem"},
            ),
            "no such case": sara.post("/cases/99999", data={"csrf": token, "to": "verifying"}),
            "notice before notified": sara.get(f"/cases/{number}/notice"),
        }
        for client in (sara, huda):
            client.close()
    for what, answer in refused.items():
        assert 400 <= answer.status_code < 500, (what, answer.status_code)
        assert 'role="alert"' in answer.text, what
    # The broker was asked only to refresh the refused steps' case, and nothing changed here.
    assert not [r for r in broker.sent[before[0] :] if r.method == "POST"]
    assert _rows(desk) == before[1]


def _rows(desk: Desk) -> list[tuple[object, ...]]:
    with desk.db.transaction() as session:
        return [
            (c.id, c.state, c.assigned_to, c.reason) for c in session.query(Case).order_by(Case.id)
        ] + [("notes", session.query(CaseNote).count())]


def test_every_refusal_of_the_broker_s_case_rules_has_the_desk_s_words() -> None:
    """Each 409 the broker's case rules give (read from its source, which the desk does not
    import) is said in the page in Arabic and English, not only as the broker's message."""
    source = "\n".join(
        path.read_text() for path in (REPO / "src" / "matchhub" / "cases").glob("*.py")
    )
    codes = set(re.findall(r"Conflict\(\s*[^()]*?code=\"([a-z_]+)\"", source, re.DOTALL))
    assert {"response_not_due", "case_lapsed", "not_verified"} <= codes
    assert {c for c in codes if f"case.error.{c}" not in i18n.MESSAGES} == set()
