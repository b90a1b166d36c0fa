"""The desk's one way to add a page.

A page is a plain function of a `PageContext`, registered with `Pages.page`::

    @pages.page("/lookup", name="lookup", permission=Permission.lookup, nav="nav.lookup")
    def lookup(ctx: PageContext) -> Response:
        return ctx.render("lookup.html", ...)

The registration does, for every page, what none may forget: a signed-in session (or the
sign-in page), the role's permission (or 403, in the page), the CSRF token of every form
posted (or 403), the member of staff and their language, and the page's place in the
navigation, which each member of staff sees filtered by their role. The function runs in a
worker thread, so it may call the database and the broker directly.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, Headers
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from matchhub.agency.desk import i18n, sessions
from matchhub.agency.desk.accounts import Permission, Staff
from matchhub.agency.desk.service import Desk

HERE = Path(__file__).parent
MAX_FORM_BYTES = 256 * 1024
"""A posted form without a file: far more than any page's fields need."""

Handler = Callable[["PageContext"], Response]
BodyLimit = Callable[[Desk], int]
"""The largest body a page's form may post, read from the desk's settings per request."""


@dataclass(frozen=True)
class Page:
    path: str
    name: str
    permission: Permission | None
    nav: str | None  # the navigation label's message key; None: not in the navigation


@dataclass
class PageContext:
    request: Request
    desk: Desk
    staff: Staff
    csrf: str
    session_id: str
    templates: Environment
    navigation: list[Page]
    form: FormData | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def lang(self) -> str:
        return self.staff.language

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else default

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return render(
            self.templates,
            template,
            status,
            lang=self.lang,
            staff=self.staff,
            csrf=self.csrf,
            nav=[
                p for p in self.navigation if p.permission is None or self.staff.may(p.permission)
            ],
            path=self.request.url.path,
            **values,
        )

    def t(self, key: str) -> str:
        return i18n.t(key, self.lang)

    def forbidden(self) -> HTMLResponse:
        return self.render("error.html", 403, title="error.403.title", text="error.403.text")

    def not_found(self) -> HTMLResponse:
        return self.render("error.html", 404, title="error.404.title", text="error.404.text")


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def render(templates: Environment, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    lang = values.setdefault("lang", "ar")
    values.setdefault("dir", "rtl" if lang == "ar" else "ltr")
    html = templates.get_template(template).render(**values)
    return HTMLResponse(html, status_code=status)


def make_templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        t=i18n.t,
        number=i18n.number,
        percent=i18n.percent,
        day=i18n.day,
        moment=i18n.moment,
        digits=i18n.digits,
    )
    return env


class Pages:
    """The registry: each page's route and its place in the navigation."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.navigation: list[Page] = []

    def page(
        self,
        path: str,
        *,
        name: str,
        permission: Permission | None = None,
        methods: tuple[str, ...] = ("GET",),
        nav: str | None = None,
        max_body: BodyLimit = lambda desk: MAX_FORM_BYTES,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            page = Page(path, name, permission, nav)
            if nav is not None:
                self.navigation.append(page)
            self.routes.append(
                Route(
                    path, self._endpoint(page, handler, max_body), methods=list(methods), name=name
                )
            )
            return handler

        return register

    def _endpoint(
        self, page: Page, handler: Handler, max_body: BodyLimit
    ) -> Callable[[Request], Any]:
        navigation = self.navigation

        async def endpoint(request: Request) -> Response:
            desk: Desk = request.app.state.desk
            templates: Environment = request.app.state.templates
            cookie = request.cookies.get(desk.config.cookie_name)
            found, why = await run_in_threadpool(_session, desk, cookie)
            if found is None:
                return redirect("/login?m=expired" if why == "expired" else "/login")
            context = PageContext(
                request,
                desk,
                found.staff,
                found.csrf,
                found.session_id,
                templates,
                navigation,
                params=request.path_params,
            )
            if page.permission is not None and not found.staff.may(page.permission):
                await run_in_threadpool(
                    desk.record, found.staff, "forbidden", "refused", page=page.name
                )
                return context.forbidden()
            if request.method == "POST":
                refused = await _read_form(request, context, max_body(desk))
                if refused is not None:
                    return refused
            try:
                return await run_in_threadpool(handler, context)
            finally:
                if context.form is not None:
                    await context.form.close()

        return endpoint


def _session(desk: Desk, cookie: str | None) -> tuple[sessions.Current | None, str | None]:
    with desk.db.transaction() as session:
        return sessions.current(session, cookie, desk.config.settings)


async def _read_form(request: Request, context: PageContext, max_body: int) -> Response | None:
    """The posted form, once its size is known to be allowed (refused before a byte of it is
    read) and its CSRF token checked."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():  # a browser always says it
        return context.render("error.html", 411, title="error.400.title", text="error.400.text")
    if int(length) > max_body:
        await run_in_threadpool(
            context.desk.record,
            context.staff,
            "too_large",
            "refused",
            page=request.url.path,
            bytes=int(length),
        )
        return context.render("error.html", 413, title="error.413.title", text="error.413.text")
    context.form = await read_form(request, max_files=2, max_fields=200)  # an export: 2 files
    if not sessions.csrf_ok(context.csrf, context.form.get("csrf")):
        await context.form.close()
        await run_in_threadpool(
            context.desk.record, context.staff, "csrf", "refused", page=request.url.path
        )
        return context.render("error.html", 403, title="error.csrf.title", text="error.csrf.text")
    return None


class _WholeMultiPartParser(MultiPartParser):
    """Starlette's multipart parser, refusing a body that ends before its closing delimiter
    (``--boundary--``). python-multipart never checks that (its ``finalize`` does nothing), so
    a body cut short was read as the parts that had ended, the cut one left out without a word:
    a form missing its last fields, or an extract missing altogether."""

    def __init__(self, headers: Headers, stream: AsyncIterator[bytes], **limits: Any) -> None:
        super().__init__(headers, self._whole(stream), **limits)
        self._ended = False

    def on_end(self) -> None:  # python-multipart's callback: the closing delimiter was read
        self._ended = True

    async def _whole(self, stream: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        async for chunk in stream:
            yield chunk
        # Raised inside the parser's own reading, so it closes the files it spooled.
        if not self._ended:
            raise MultiPartException("the multipart body ends before its closing boundary")


async def read_form(request: Request, *, max_files: int, max_fields: int) -> FormData:
    """The posted form, as ``request.form`` reads it, but a multipart body cut short is
    refused like any other malformed one: 400, the desk's page for a request it cannot read
    (app.py ``not_understood``), and nothing of it reaches the desk's state."""
    content_type, _ = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        return await request.form(max_files=max_files, max_fields=max_fields)
    async with aclosing(request.stream()) as stream:
        parser = _WholeMultiPartParser(
            request.headers, stream, max_files=max_files, max_fields=max_fields
        )
        try:
            return await parser.parse()
        except MultiPartException as exc:
            raise HTTPException(status_code=400, detail=exc.message) from exc


def safe_back(value: str | None) -> str:
    """A same-site path to go back to after a form, never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return quote(value, safe="/?=&-_.~%")
