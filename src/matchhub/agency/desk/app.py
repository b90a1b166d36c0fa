"""``create_app(desk)``: the desk's web application (Starlette).

Besides the pages (pages.py, registered through web.py), it serves sign-in, sign-out, the
language switch and its own static files (a style sheet and an icon: no script, no font, nothing
from elsewhere), and sets on every answer the headers a security reviewer looks for: a Content
Security Policy that allows only the desk itself, no framing, no referrer, no caching of pages
(they hold beneficiaries' names), and HSTS when served over TLS.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from matchhub.agency.desk import accounts, eventlog, sessions
from matchhub.agency.desk import auditing as _auditing  # noqa: F401 (registers its pages)
from matchhub.agency.desk.pages import pages
from matchhub.agency.desk.service import Desk
from matchhub.agency.desk.web import (
    HERE,
    make_templates,
    read_form,
    redirect,
    render,
    safe_back,
)

LOGIN_COOKIE = "login"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


def _login_cookie(desk: Desk) -> str:
    return f"{desk.config.cookie_name}-{LOGIN_COOKIE}"


def _cookie_options(desk: Desk) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": desk.config.settings.secure_cookies,
        "path": "/",
    }


async def login_page(request: Request) -> Response:
    message = {
        "expired": "login.expired",
        "signed_out": "login.signed_out",
        "form": "login.form_expired",
    }.get(request.query_params.get("m", ""))
    return _login_form(request, message, 200)


def _login_form(request: Request, message: str | None, status: int) -> Response:
    desk: Desk = request.app.state.desk
    token = secrets.token_urlsafe(32)
    response = render(
        request.app.state.templates,
        "login.html",
        status,
        lang="en" if request.query_params.get("lang") == "en" else "ar",
        csrf=token,
        message=message,
    )
    # Double-submit: the sign-in form carries the same random value as this cookie, which a
    # page of another site can neither read nor set.
    response.set_cookie(_login_cookie(desk), token, **_cookie_options(desk))
    return response


SMALL_FORM = 64 * 1024
"""Bytes of a sign-in, sign-out or language form at most: a few short fields."""


async def _small_form(request: Request) -> FormData | Response:
    """The form of a page outside the pages' own reading (web.py): its length said and small,
    or the desk's error page."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():  # a browser always says it
        return await _error_page(request, 411, "error.400")
    if int(length) > SMALL_FORM:
        return await _error_page(request, 413, "error.413")
    return await read_form(request, max_files=0, max_fields=10)


async def _error_page(request: Request, status: int, key: str, lang: str | None = None) -> Response:
    """The desk's error page, in the language of the member of staff signed in (Arabic for
    anyone else)."""
    if lang is None:
        desk: Desk = request.app.state.desk
        lang = await run_in_threadpool(
            _language, desk, request.cookies.get(desk.config.cookie_name)
        )
    return render(
        request.app.state.templates,
        "error.html",
        status,
        lang=lang or "ar",
        title=f"{key}.title",
        text=f"{key}.text",
    )


def _language(desk: Desk, cookie: str | None) -> str | None:
    with desk.db.transaction() as session:
        return sessions.language(session, cookie, desk.config.settings)


async def login(request: Request) -> Response:
    desk: Desk = request.app.state.desk
    form = await _small_form(request)
    if isinstance(form, Response):
        return form
    expected = request.cookies.get(_login_cookie(desk))
    if not expected or not sessions.csrf_ok(expected, form.get("csrf")):
        return redirect("/login?m=form")
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    opened = await run_in_threadpool(_sign_in, desk, name, password)
    if opened is None:
        return _login_form(request, "login.refused", 401)
    response = redirect("/")
    response.set_cookie(desk.config.cookie_name, opened.cookie, **_cookie_options(desk))
    response.delete_cookie(_login_cookie(desk), path="/")
    return response


def _sign_in(desk: Desk, name: str, password: str) -> sessions.Opened | None:
    settings = desk.config.settings
    with desk.db.transaction() as session:
        outcome = accounts.authenticate(
            session,
            name,
            password,
            failures=settings.lockout_failures,
            lockout=timedelta(minutes=settings.lockout_minutes),
        )
        # The log names a member of staff only if the name is one: an unknown name may be a
        # password typed into the wrong box.
        who = outcome.user.name if outcome.user is not None else None
        if outcome.reason is not None or outcome.user is None:
            eventlog.record(session, who, "sign_in", "refused", reason=outcome.reason)
            return None
        eventlog.record(session, who, "sign_in")
        return sessions.open_session(session, outcome.user)


async def logout(request: Request) -> Response:
    desk: Desk = request.app.state.desk
    form = await _small_form(request)
    if isinstance(form, Response):
        return form
    cookie = request.cookies.get(desk.config.cookie_name)
    found, _ = await run_in_threadpool(_current, desk, cookie)
    if found is None:
        return redirect("/login")
    if not sessions.csrf_ok(found.csrf, form.get("csrf")):
        return await _error_page(request, 403, "error.csrf", found.staff.language)
    await run_in_threadpool(_end, desk, found)
    response = redirect("/login?m=signed_out")
    response.delete_cookie(desk.config.cookie_name, path="/")
    return response


def _current(desk: Desk, cookie: str | None) -> tuple[sessions.Current | None, str | None]:
    with desk.db.transaction() as session:
        return sessions.current(session, cookie, desk.config.settings)


def _end(desk: Desk, found: sessions.Current) -> None:
    with desk.db.transaction() as session:
        sessions.end(session, found.session_id)
        eventlog.record(session, found.staff.name, "sign_out")


async def language(request: Request) -> Response:
    desk: Desk = request.app.state.desk
    form = await _small_form(request)
    if isinstance(form, Response):
        return form
    found, _ = await run_in_threadpool(_current, desk, request.cookies.get(desk.config.cookie_name))
    if found is None:
        return redirect("/login")
    if not sessions.csrf_ok(found.csrf, form.get("csrf")):
        return await _error_page(request, 403, "error.csrf", found.staff.language)
    chosen = "en" if form.get("language") == "en" else "ar"
    await run_in_threadpool(_set_language, desk, found.staff.id, chosen)
    return redirect(safe_back(str(form.get("back", "/"))))


def _set_language(desk: Desk, user_id: int, chosen: str) -> None:
    from matchhub.agency.desk.models import User  # noqa: PLC0415

    with desk.db.transaction() as session:
        user = session.get(User, user_id)
        if user is not None:
            user.language = chosen


class SecurityHeaders:
    """The same headers on every answer, static files included."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, hsts: bool) -> None:
        self.app, self.hsts = app, hsts

    async def __call__(
        self, scope: Scope, receive: Callable[..., Any], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (
                        b"cache-control",
                        b"private, max-age=3600" if static else b"no-store",
                    ),
                ]
                if self.hsts:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


async def not_found(request: Request, exc: Exception) -> Response:
    return await _error_page(request, 404, "error.404")


async def not_understood(request: Request, exc: Exception) -> Response:
    """A request the desk cannot read (a malformed multipart body, a form with too many
    fields or files): the desk's own page, in the signed-in member's language, not the
    framework's plain text. Nothing of it reached the desk's state."""
    status = exc.status_code if isinstance(exc, HTTPException) else 400
    if status == 404:
        return await not_found(request, exc)
    page = await _error_page(request, status, "error.405" if status == 405 else "error.400")
    if isinstance(exc, HTTPException) and exc.headers:  # a 405's Allow
        page.headers.update(exc.headers)
    return page


def create_app(desk: Desk) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(desk.resume)
        yield

    app = Starlette(
        routes=[
            Route("/login", login_page, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/language", language, methods=["POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
            *pages.routes,
        ],
        exception_handlers={404: not_found, HTTPException: not_understood},
        lifespan=lifespan,
    )
    app.state.desk = desk
    app.state.templates = make_templates()
    app.add_middleware(SecurityHeaders, hsts=desk.config.settings.secure_cookies)
    return app
