"""The desk in a real browser: Debian's chromium, headless, driven by Playwright (pointed at
/usr/bin/chromium; it never downloads a browser), against a real desk server and a real broker.

Each main page is saved as a screenshot, in Arabic and in English, under
``tests/artifacts/desk/<backend>/`` (ignored by git); the path is printed.
"""

from __future__ import annotations

import csv
import json
import os
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import text

from matchhub.agency.desk import accounts
from matchhub.agency.desk.service import Desk
from matchhub.protocol.tokens import normalise
from tests.desk.conftest import ARTIFACTS, PASSWORD, STAFF, DeskWorld, serving

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

pytestmark = pytest.mark.slow


def _audit_size(world: DeskWorld) -> int:
    with world.server.hub.session() as session:
        return int(session.execute(text("SELECT size FROM audit_state")).scalar_one())


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file))


class Shots:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        print(f"\nscreenshots of the desk's pages: {folder}")

    def take(self, page: object, name: str) -> None:
        page.screenshot(path=str(self.folder / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def _sign_in(page: object, url: str, name: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/login")  # type: ignore[attr-defined]
    page.fill("#name", name)  # type: ignore[attr-defined]
    page.fill("#password", password)  # type: ignore[attr-defined]
    page.click("#signin")  # type: ignore[attr-defined]


def _language(page: object) -> None:
    page.click("header form[action='/language'] button")  # type: ignore[attr-defined]


def test_the_desk_in_a_browser(
    world: DeskWorld, browser: object, request: pytest.FixtureRequest
) -> None:
    backend = "postgresql" if "postgresql" in request.node.name else "sqlite"
    shots = Shots(ARTIFACTS / backend)
    desk: Desk = world.desk()
    desk.poll_seconds = 0.1
    truth, household_of = world.truth()
    with serving(desk) as url:
        context = browser.new_context(accept_downloads=True, locale="ar-IQ")  # type: ignore[attr-defined]
        page = context.new_page()

        # Sign-in, in Arabic by default, right to left; a wrong password is refused.
        page.goto(f"{url}/login")
        assert page.evaluate("getComputedStyle(document.documentElement).direction") == "rtl"
        shots.take(page, "login-ar")
        _sign_in(page, url, "ali.hassan", "a wrong password")
        assert page.locator("[role=alert]").inner_text().startswith("لم يتم الدخول")
        _sign_in(page, url, "ali.hassan")
        assert page.url == f"{url}/"
        shots.take(page, "dashboard-ar")
        # Right to left in fact: the first navigation link sits right of the last.
        links = page.locator("nav.nav a")
        first, last = links.first.bounding_box(), links.last.bounding_box()
        assert first is not None
        assert last is not None
        assert first["x"] > last["x"]

        # The analyst registers the roster from the extract, with progress, through the page.
        page.goto(f"{url}/roster")
        page.set_input_files("#extract", str(world.data / "welfare.csv"))
        page.click("#register")
        page.wait_for_selector(".state-current", timeout=60_000)
        shots.take(page, "roster-ar")

        # ...starts a collective match and waits for its summary.
        page.goto(f"{url}/matches")
        page.click("#start-match")
        page.wait_for_selector("#summary", timeout=60_000)
        flagged = sum(1 for flags in truth.values() if flags)
        assert page.inner_text("#flagged") == f"{flagged:,}".translate(ARABIC_INDIC).replace(
            ",", "٬"
        )
        assert "أكبر من العدد الكلي" in page.inner_text("#why-more")
        shots.take(page, "match-ar")
        match_url = page.url

        # ...downloads the lists: equal to the synthetic ground truth, per beneficiary and
        # per household.
        with page.expect_download() as caught:
            page.click("#list-csv")
        listed = _rows(Path(caught.value.path()))
        assert {r["beneficiary_id"]: set(r["flags"].split(";")) for r in listed} == {
            b: f for b, f in truth.items() if f
        }
        with page.expect_download() as caught:
            page.click("#households-csv")
        households: dict[str, set[str]] = {}
        for beneficiary, flags in truth.items():
            if flags:
                households.setdefault(household_of[beneficiary], set()).update(flags)
        got = {
            r["household_id"]: set(r["flags"].split(";")) for r in _rows(Path(caught.value.path()))
        }
        assert got == households
        with page.expect_download() as caught:
            page.click("#list-xlsx")
        with zipfile.ZipFile(caught.value.path()) as workbook:
            assert "xl/worksheets/sheet1.xml" in workbook.namelist()
            # Constant-memory mode writes strings inline, in the sheet itself.
            strings = workbook.read("xl/worksheets/sheet1.xml").decode()
        assert listed[0]["beneficiary_id"] in strings
        assert "رقم المستفيد" in strings

        # English, per user: the same pages left to right.
        _language(page)
        page.goto(match_url)
        assert page.evaluate("getComputedStyle(document.documentElement).direction") == "ltr"
        assert page.inner_text("#flagged") == f"{flagged:,}"
        shots.take(page, "match-en")
        for name, path in (("dashboard", "/"), ("roster", "/roster"), ("matches", "/matches")):
            page.goto(f"{url}{path}")
            shots.take(page, f"{name}-en")
        _language(page)
        page.goto(f"{url}/matches")
        shots.take(page, "matches-ar")

        # Sign out: the pages are closed again.
        page.click("#signout")
        assert "/login" in page.url
        assert page.locator("[role=alert]").inner_text() == "تم تسجيل الخروج."
        page.goto(f"{url}/matches")
        assert page.url.startswith(f"{url}/login")

        # A caseworker cannot start a match nor download a list: 403, in the page.
        _sign_in(page, url, "huda.kareem")
        assert page.goto(f"{url}/matches").status == 403
        assert "غير مسموح" in page.inner_text("h1")
        assert page.goto(f"{match_url}/beneficiaries.csv").status == 403
        assert page.locator("nav.nav a[href='/matches']").count() == 0

        # A malformed ID: a clear message, and no request reaches the broker.
        page.goto(f"{url}/lookup")
        before = _audit_size(world)
        page.fill("#ids", "١٢٣٤٥\n")
        page.click("#lookup")
        assert "لم يُرسل شيء إلى الوسيط" in page.inner_text("#problems")
        assert "عدد الأرقام غير صحيح" in page.inner_text("#problems")
        assert _audit_size(world) == before

        # A lookup of an ID written in Arabic-Indic digits, with a dash and spaces.
        national = _flagged_national_id(world)
        typed = f"{national[:4]} - {national[4:]}".translate(ARABIC_INDIC)
        page.fill("#ids", typed)
        page.click("#lookup")
        result = page.inner_text("#results")
        assert "مؤشر يحتاج إلى تحقق" in result
        assert _audit_size(world) > before
        shots.take(page, "lookup-ar")
        _language(page)
        page.fill("#ids", national)
        page.click("#lookup")
        assert "Indication to verify" in page.inner_text("#results")
        shots.take(page, "lookup-en")
        page.click("#signout")
        page.goto(f"{url}/login?lang=en")
        shots.take(page, "login-en")

        # Lockout: after the set number of failures, even the right password is refused.
        for _ in range(desk.config.settings.lockout_failures):
            _sign_in(page, url, "sara.jabbar", "not her password")
        _sign_in(page, url, "sara.jabbar")
        assert page.url.startswith(f"{url}/login")
        assert page.locator("[role=alert]").count() == 1
        context.close()

        # No page ever showed a token, the key or a certificate (all the HTML fetched above
        # is gone, but the lists are what leaves the desk): no 64-hex string in them.
        for row in listed:
            assert not any(
                len(v) == 64 and all(c in "0123456789abcdef" for c in v) for v in row.values()
            )

    _every_entry_names_its_staff_member(world, desk)
    desk.close()
    # A superset (other tests save theirs in the same folder): sets, not sorted lists.
    assert {p.name for p in shots.folder.iterdir()} >= {
        f"{n}-{lang}.png"
        for n in ("login", "dashboard", "matches", "match", "lookup")
        for lang in ("ar", "en")
    }


def _flagged_national_id(world: DeskWorld) -> str:
    with (world.data / "truth.csv").open(encoding="utf-8") as file:
        for row in csv.DictReader(file):
            if row["on_roster"] == "1" and row["flags"]:
                return normalise(row["national_id"], "iq.ncn")
    raise AssertionError("the synthetic roster has no flagged member")


def _every_entry_names_its_staff_member(world: DeskWorld, desk: Desk) -> None:
    """The broker's log: every entry the desk caused names the acting member of staff by
    pseudonym (the analyst's roster, match and results; the caseworker's lookup), and no
    entry holds a member of staff's name."""
    with desk.db.transaction() as session:
        pseudonyms = {u.name: u.pseudonym for u in accounts.users(session)}
    with world.server.hub.session() as session:
        rows = session.execute(
            text("SELECT agency, end_user, body FROM audit_entries ORDER BY seq")
        ).all()
    caused = [(agency, end_user, body) for agency, end_user, body in rows if agency == "molsa"]
    caused += [
        (agency, end_user, body)
        for agency, end_user, body in rows
        if json.loads(body)["kind"] == "job"
    ]
    assert len(caused) > 10
    for _, end_user, body in caused:
        assert end_user in pseudonyms.values(), body
        assert json.loads(body)["end_user"] == end_user
    routes = {(json.loads(body).get("route"), end_user) for _, end_user, body in caused}
    assert ("/v1/lookups", pseudonyms["huda.kareem"]) in routes
    assert ("/v1/match-jobs", pseudonyms["ali.hassan"]) in routes
    assert ("/v1/uploads", pseudonyms["ali.hassan"]) in routes
    everything = "\n".join(body for _, _, body in rows)
    for name in STAFF:
        assert name not in everything
        assert name.split(".")[1] not in everything
    assert os.environ.get("MATCHHUB_DESK_DATABASE_URL") is None
