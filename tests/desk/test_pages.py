"""The desk's pages in process (the app over an ASGI transport, the broker real): sign-in,
roles, CSRF, sessions, lookups and rosters, and what the pages must never show."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import httpx
from sqlalchemy import select

from matchhub.agency.desk import accounts, eventlog
from matchhub.agency.desk.config import DeskConfig
from matchhub.agency.desk.models import StaffSession
from matchhub.agency.desk.service import Desk
from tests.desk.conftest import CONNECTORS, PASSWORD, DeskWorld, key_of, run_cli, serving

PURPOSE = "eligibility_review"


@contextmanager
def desk_client(world: DeskWorld) -> Iterator[tuple[httpx.Client, Desk]]:
    desk = world.desk()
    desk.poll_seconds = 0.05
    with serving(desk) as url, httpx.Client(base_url=url, follow_redirects=False) as client:
        yield client, desk
    desk.close()


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, "no CSRF field in the form"
    return found.group(1)


def sign_in(client: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    form = client.get("/login")
    return client.post("/login", data={"name": name, "password": password, "csrf": csrf(form)})


def test_sign_in_wrong_password_lockout_and_sign_out(world: DeskWorld) -> None:
    with desk_client(world) as (client, desk):
        assert client.get("/").headers["location"] == "/login"
        refused = sign_in(client, "huda.kareem", "not the password")
        assert refused.status_code == 401
        assert "لم يتم الدخول" in refused.text
        signed = sign_in(client, "huda.kareem")
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
        home = client.get("/")
        assert home.status_code == 200
        assert '<html lang="ar" dir="rtl">' in home.text
        out = client.post("/logout", data={"csrf": csrf(home)})
        assert out.headers["location"] == "/login?m=signed_out"
        assert client.get("/").status_code == 303
        # Five wrong passwords lock the account: the right one is then refused too.
        for _ in range(desk.config.settings.lockout_failures):
            assert sign_in(client, "huda.kareem", "wrong password!").status_code == 401
        assert sign_in(client, "huda.kareem").status_code == 401
        # The refusal is the same for a name that does not exist.
        assert sign_in(client, "nobody-here").text.count("لم يتم الدخول") == 1
        # A supervisor lifts the lockout on the Staff page; the caseworker is back.
        sign_in(client, "sara.jabbar")
        staff = client.get("/staff")
        assert "رفع القفل" in staff.text
        unlock = {"csrf": csrf(staff), "action": "enable", "name": "huda.kareem"}
        assert client.post("/staff", data=unlock).status_code == 303
        client.cookies.clear()
        assert sign_in(client, "huda.kareem").status_code == 303
        with desk.db.transaction() as session:
            events = [
                (e.user_name, e.action, e.outcome, e.details.get("reason"))
                for e in eventlog.recent(session)
            ]
    assert ("huda.kareem", "sign_in", "refused", "locked") in events
    assert ("huda.kareem", "sign_in", "refused", "locked_now") in events
    assert ("huda.kareem", "sign_out", "ok", None) in events
    assert (None, "sign_in", "refused", "unknown") in events


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(world: DeskWorld) -> None:
    with desk_client(world) as (client, _):
        sign_in(client, "sara.jabbar")
        page = client.get("/staff")
        refused = client.post(
            "/staff",
            data={"action": "add", "name": "intruder", "role": "supervisor", "password": "x" * 12},
        )
        assert refused.status_code == 403
        forged = client.post(
            "/staff",
            data={
                "action": "add",
                "name": "intruder",
                "role": "supervisor",
                "password": "x" * 12,
                "csrf": "forged",
            },
        )
        assert forged.status_code == 403
        assert "intruder" not in client.get("/staff").text
        added = client.post(
            "/staff",
            data={
                "action": "add",
                "name": "intruder",
                "role": "caseworker",
                "password": "x" * 12,
                "csrf": csrf(page),
            },
        )
        assert added.status_code == 200
        assert "intruder" in added.text
        # Sign-in itself: a post without the login cookie's twin is sent back to the form.
        with httpx.Client(base_url=str(client.base_url)) as fresh:
            bare = fresh.post(
                "/login", data={"name": "sara.jabbar", "password": PASSWORD, "csrf": "x"}
            )
        assert bare.headers["location"] == "/login?m=form"
        # A body the desk cannot read is its own page, not the framework's plain text.
        broken = {"content-type": "multipart/form-data; boundary=x"}
        for path in ("/staff", "/login"):
            garbled = client.post(path, content=b"--x\r\nnot a part", headers=broken)
            assert garbled.status_code == 400, path
            assert garbled.headers["content-type"].startswith("text/html")
            assert "طلب غير مفهوم" in garbled.text
        crowded = client.post("/login", data={f"f{i}": "x" for i in range(20)})
        assert crowded.status_code == 400
        assert "طلب غير مفهوم" in crowded.text
        # Signing out and choosing a language are refused on the same page as every form.
        for path in ("/language", "/logout"):
            wrong = client.post(path, data={"csrf": "forged", "language": "en"})
            assert wrong.status_code == 403, path
            assert "طلب مرفوض" in wrong.text
        unsized = client.post("/login", content=iter([b"name=a&password=b&csrf=x"]))
        assert unsized.status_code == 411
        assert "طلب غير مفهوم" in unsized.text
        fetched = client.get("/logout")
        assert fetched.status_code == 405
        assert fetched.headers["allow"] == "POST"
        assert "غير مسموح بهذه الطريقة" in fetched.text
        assert client.get("/").status_code == 200  # still signed in: nothing was done
        # The same pages for a member of staff who chose English are in English.
        chosen = client.post("/language", data={"language": "en", "csrf": csrf(client.get("/"))})
        assert chosen.status_code == 303
        assert 'lang="en"' in client.get("/").text
        for path in ("/language", "/logout"):
            wrong = client.post(path, data={"csrf": "forged", "language": "ar"})
            assert wrong.status_code == 403, path
            assert "Request refused" in wrong.text
            assert 'dir="ltr"' in wrong.text
        assert "Not allowed this way" in client.get("/logout").text
        assert "There is no page at this address" in client.get("/nowhere").text
        garbled = client.post("/staff", content=b"--x\r\nnot a part", headers=broken)
        assert "Request not understood" in garbled.text
        assert 'lang="en"' in client.get("/").text  # the forged choice changed nothing


def test_each_role_sees_its_pages_and_gets_403_elsewhere(world: DeskWorld) -> None:
    expected = {
        "huda.kareem": {
            "/lookup": 200,
            "/matches": 403,
            "/roster": 403,
            "/staff": 403,
            "/log": 403,
            "/audit": 403,
            "/cases": 200,
        },
        "ali.hassan": {
            "/lookup": 403,
            "/matches": 200,
            "/roster": 200,
            "/staff": 403,
            "/log": 403,
            "/audit": 403,
            "/cases": 200,
        },
        "sara.jabbar": {
            "/lookup": 200,
            "/matches": 200,
            "/roster": 200,
            "/staff": 200,
            "/log": 200,
            "/audit": 403,
            "/cases": 200,
        },
        "omar.salih": {
            "/lookup": 403,
            "/matches": 403,
            "/roster": 403,
            "/staff": 403,
            "/log": 403,
            "/audit": 200,
            "/cases": 403,
        },
    }
    with desk_client(world) as (client, _):
        for name, pages in expected.items():
            client.cookies.clear()
            sign_in(client, name)
            home = client.get("/")
            for path, status in pages.items():
                assert client.get(path).status_code == status, (name, path)
                assert (f'href="{path}"' in home.text) == (status == 200), (name, path)
        # A caseworker cannot start a match nor download a list, even by posting directly.
        client.cookies.clear()
        sign_in(client, "huda.kareem")
        home = client.get("/")
        assert (
            client.post("/matches", data={"purpose": PURPOSE, "csrf": csrf(home)}).status_code
            == 403
        )
        assert client.get("/matches/1/beneficiaries.csv").status_code == 403


def test_a_cookie_from_another_desk_or_an_expired_session_is_refused(
    world: DeskWorld, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    with desk_client(world) as (client, desk):
        signed = sign_in(client, "sara.jabbar")
        value = client.cookies.get(desk.config.cookie_name)
        assert value
        assert client.get("/").status_code == 200
        client.post("/language", data={"language": "en", "csrf": csrf(client.get("/"))})
        assert "There is no page at this address" in client.get("/nowhere").text
        # The same session, idle for longer than the setting: over, and said so.
        with desk.db.transaction() as session:
            row = session.scalars(select(StaffSession)).first()
            assert row is not None
            row.last_seen = row.last_seen - timedelta(minutes=desk.config.settings.idle_minutes + 1)
        # Even an error page no longer takes its language from it.
        assert "لا توجد صفحة بهذا العنوان" in client.get("/nowhere").text
        assert client.get("/").headers["location"] == "/login?m=expired"
        assert client.get("/").headers["location"] == "/login"  # and it stays over
        assert signed.status_code == 303
    # Another desk (its own home and database) does not know this desk's cookie.
    other_home = tmp_path / "other-desk"
    assert run_cli(other_home, *_init_args(world)) == 0
    other = Desk(DeskConfig.load(other_home))
    with serving(other) as url, httpx.Client(base_url=url, follow_redirects=False) as stranger:
        stranger.cookies.set(other.config.cookie_name, value)
        assert stranger.get("/").headers["location"] == "/login"
    other.close()


def _init_args(world: DeskWorld) -> list[str]:
    creds = world.server.hub.credentials["molsa"]
    return [
        *("init", "--broker", world.server.url, "--credentials", str(creds.certificate.parent)),
        *("--code", "molsa", "--matching-key", str(world.key_file)),
        *("--definition", str(CONNECTORS / "welfare.toml")),
        *("--extract", str(world.data / "welfare.csv")),
    ]


def _upload(client: httpx.Client, body: bytes, name: str = "roster.csv") -> httpx.Response:
    page = client.get("/roster")
    return client.post(
        "/roster/register",
        data={"csrf": csrf(page)},
        files={"extract": (name, body, "text/csv")},
    )


def _wait_roster(desk: Desk, number: int) -> str:
    import time  # noqa: PLC0415

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = next(r for r in desk.rosters() if r.id == number)
        if state.state != "running":
            return f"{state.state}: {state.error or ''}"
        time.sleep(0.05)
    raise AssertionError("the registration did not finish")


def _multipart(fields: dict[str, str], extract: bytes | None = None) -> bytes:
    """A form as a browser posts it as multipart/form-data (boundary ``cut``), whole."""
    parts = [
        f'--cut\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    if extract is not None:
        parts.append(
            b'--cut\r\nContent-Disposition: form-data; name="extract"; filename="roster.csv"\r\n'
            b"Content-Type: text/csv\r\n\r\n" + extract + b"\r\n"
        )
    return b"".join(parts) + b"--cut--\r\n"


def test_a_multipart_form_cut_short_is_refused_and_changes_nothing(world: DeskWorld) -> None:
    """A body that ends before its closing boundary was read as the parts that had ended: a
    form missing its last fields was acted on, and an extract cut off was left out silently."""
    multipart = {"content-type": "multipart/form-data; boundary=cut"}
    with desk_client(world) as (client, desk):
        sign_in(client, "sara.jabbar")
        token = csrf(client.get("/staff"))
        add = {"csrf": token, "action": "add", "name": "intruder", "role": "caseworker"}
        whole = _multipart({**add, "password": "x" * 12})
        extract = (world.data / "welfare.csv").read_bytes()
        upload = _multipart({"csrf": token}, extract)
        longer = _multipart({**add, "password": "x" * 12, "back": "/staff"})
        for path, body in (
            ("/staff", longer[: longer.index(b'name="back"')]),  # every field it reads, then cut
            ("/staff", whole.removesuffix(b"--cut--\r\n")),  # no closing boundary
            ("/staff", whole[: whole.index(b"xxxx")]),  # cut inside the password
            ("/staff", b""),
            ("/roster/register", upload[: len(upload) // 2]),  # cut inside the extract
            ("/login", _multipart({"name": "a", "password": "b"}).removesuffix(b"--\r\n")),
        ):
            refused = client.post(path, content=body, headers=multipart)
            assert refused.status_code == 400, (path, len(body))
            assert "طلب غير مفهوم" in refused.text
        assert "intruder" not in client.get("/staff").text
        assert desk.rosters() == []
        assert list(desk.config.incoming.iterdir()) == []
        # The same form whole is read as before.
        added = client.post("/staff", content=whole, headers=multipart)
        assert added.status_code == 200
        assert "intruder" in added.text


def test_a_malformed_or_oversized_extract_is_refused_and_changes_nothing(
    world: DeskWorld,
) -> None:
    good = (world.data / "welfare.csv").read_bytes()
    header, rows = good.split(b"\r\n", 1)
    cases = {
        "not UTF-8": header + b"\r\n" + rows.decode("utf-8").encode("cp1256", "replace"),
        "no ID column": header.replace("رقم البطاقة الوطنية".encode(), b"id") + b"\r\n" + rows,
        "mostly rejected": b"\r\n".join(
            [header, *rows.split(b"\r\n")[:5], *(b"MB1,H1,123,y,z,1990,g" for _ in range(50))]
        ),
        "empty": b"",
    }
    with desk_client(world) as (client, desk):
        sign_in(client, "ali.hassan")
        assert _upload(client, good).status_code == 303
        first = desk.rosters()[0]
        assert _wait_roster(desk, first.id) == "current: "
        folders = sorted(p.name for p in desk.config.rosters.iterdir())
        held = desk.config.extract.read_bytes()
        for reason, body in cases.items():
            assert _upload(client, body).status_code == 303, reason
            outcome = _wait_roster(desk, desk.rosters()[0].id)
            assert outcome.startswith("failed: "), reason
            assert str(world.data) not in outcome
        messages = [r.error or "" for r in desk.rosters()[: len(cases)]]
        assert any("not UTF-8" in m for m in messages)
        assert any("no column" in m for m in messages)
        assert any("rows rejected" in m for m in messages)
        page = client.get("/roster")
        assert "not UTF-8" in page.text
        # Nothing changed: the same roster is current, its files and the held extract stand.
        assert desk.current_roster().id == first.id  # type: ignore[union-attr]
        assert sorted(p.name for p in desk.config.rosters.iterdir()) == folders
        assert desk.config.extract.read_bytes() == held
        assert list(desk.config.incoming.iterdir()) == []
        # Oversized: refused before it is read, with a clear message.
        desk.config = desk.config.with_settings(max_extract_mb=1)
        big = _upload(client, good + b"\r\n" * (1024 * 1024))
        assert big.status_code == 413
        assert "أكبر من الحد المسموح" in big.text
        assert "لم يُقرأ منه شيء" in big.text
        assert desk.current_roster().id == first.id  # type: ignore[union-attr]


def test_no_page_shows_a_token_a_key_or_an_id_and_the_log_keeps_none(world: DeskWorld) -> None:

    assert world.cli("roster", "--as", "ali.hassan") == 0
    out = str(world.home / "x.csv")
    assert world.cli("match", "--purpose", PURPOSE, "--out", out, "--as", "ali.hassan") == 0
    national = next(
        line.split(",")[0]
        for line in (world.data / "truth.csv").read_text().splitlines()[1:]
        if ",1," in line
    )
    secret = key_of(world).get_secret_value()
    with desk_client(world) as (client, desk):
        sign_in(client, "sara.jabbar")
        page = client.get("/lookup")
        looked = client.post(
            "/lookup", data={"csrf": csrf(page), "ids": national, "purpose": PURPOSE}
        )
        assert looked.status_code == 200
        seen = [looked.text]
        for path in ("/", "/matches", "/matches/1", "/roster", "/staff", "/log"):
            response = client.get(path)
            assert response.status_code == 200, path
            seen.append(response.text)
        with desk.db.transaction() as session:
            log = [str(e.details) for e in eventlog.recent(session)]
            pseudonyms = [u.pseudonym for u in accounts.users(session)]

    for html in seen:
        assert not re.search(r"\b[0-9a-f]{64}\b", html)
        assert "BEGIN" not in html
        assert base64.b64encode(secret).decode() not in html
        assert not any(p in html for p in pseudonyms)
    assert national not in "\n".join(log)
    assert any("'ids': 1" in entry for entry in log)
