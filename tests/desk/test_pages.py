"""The desk's pages in process (the app over an ASGI transport, the broker real): sign-in,
roles, CSRF, sessions, lookups and rosters, and what the pages must never show."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import httpx
from sqlalchemy import select

from matchhub.agency.desk.config import DeskConfig
from matchhub.agency.desk.models import StaffSession
from matchhub.agency.desk.service import Desk
from tests.desk.conftest import CONNECTORS, PASSWORD, DeskWorld, run_cli, serving

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
    with desk.db.transaction() as session:
        from matchhub.agency.desk import eventlog  # noqa: PLC0415

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


def test_each_role_sees_its_pages_and_gets_403_elsewhere(world: DeskWorld) -> None:
    expected = {
        "huda.kareem": {
            "/lookup": 200,
            "/matches": 403,
            "/roster": 403,
            "/staff": 403,
            "/log": 403,
            "/audit": 403,
        },
        "ali.hassan": {
            "/lookup": 403,
            "/matches": 200,
            "/roster": 200,
            "/staff": 403,
            "/log": 403,
            "/audit": 403,
        },
        "sara.jabbar": {
            "/lookup": 200,
            "/matches": 200,
            "/roster": 200,
            "/staff": 200,
            "/log": 200,
            "/audit": 403,
        },
        "omar.salih": {
            "/lookup": 403,
            "/matches": 403,
            "/roster": 403,
            "/staff": 403,
            "/log": 403,
            "/audit": 200,
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
        # The same session, idle for longer than the setting: over, and said so.
        with desk.db.transaction() as session:
            row = session.scalars(select(StaffSession)).first()
            assert row is not None
            row.last_seen = row.last_seen - timedelta(minutes=desk.config.settings.idle_minutes + 1)
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
