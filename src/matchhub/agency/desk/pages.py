"""The desk's pages. Each is registered with `pages.page` (web.py): that is where sign-in,
roles, CSRF and the navigation are enforced, once for all of them."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from starlette.datastructures import UploadFile
from starlette.responses import FileResponse, Response

from matchhub.agency.desk import accounts, eventlog, sessions
from matchhub.agency.desk.accounts import AccountError, Permission, Role
from matchhub.agency.desk.broker import BrokerError
from matchhub.agency.desk.charts import bars
from matchhub.agency.desk.models import utcnow
from matchhub.agency.desk.service import Desk, DeskError
from matchhub.agency.desk.spreadsheets import to_xlsx
from matchhub.agency.desk.web import PageContext, Pages, redirect

pages = Pages()
MB = 1024 * 1024


def _broker_failure(
    ctx: PageContext, exc: BrokerError, template: str, **values: object
) -> Response:
    return ctx.render(template, 502, broker_error=exc.message, **values)


@pages.page("/", name="dashboard", nav="nav.dashboard")
def dashboard(ctx: PageContext) -> Response:
    roster = ctx.desk.current_roster()
    matches = ctx.desk.matches(limit=5) if ctx.staff.may(Permission.match) else []
    return ctx.render("dashboard.html", roster=roster, matches=matches)


# --- case lookup -------------------------------------------------------------------------------


def _purposes(ctx: PageContext) -> list[tuple[str, str]]:
    catalogue = ctx.desk.catalogue(ctx.staff)
    return [(p["code"], p["labels"][ctx.lang]) for p in catalogue.purposes]


@pages.page(
    "/lookup",
    name="lookup",
    permission=Permission.lookup,
    methods=("GET", "POST"),
    nav="nav.lookup",
)
def lookup(ctx: PageContext) -> Response:
    try:
        purposes = _purposes(ctx)
    except BrokerError as exc:
        return _broker_failure(ctx, exc, "lookup.html", purposes=[], typed="", outcome=None)
    if ctx.form is None:
        return ctx.render("lookup.html", purposes=purposes, typed="", outcome=None)
    typed, purpose = ctx.field("ids"), ctx.field("purpose")
    values = {"purposes": purposes, "typed": typed, "purpose": purpose}
    if purpose not in {code for code, _ in purposes}:
        return ctx.render("lookup.html", 422, outcome=None, **values)
    try:
        outcome = ctx.desk.lookup(ctx.staff, typed, purpose)
    except DeskError as exc:
        return ctx.render("lookup.html", 422, outcome=None, message=exc.key, **values)
    except BrokerError as exc:
        return _broker_failure(ctx, exc, "lookup.html", outcome=None, **values)
    catalogue = ctx.desk.catalogue(ctx.staff)
    status = 422 if outcome.problems else 200
    empty = not outcome.entries and not outcome.problems
    return ctx.render(
        "lookup.html",
        422 if empty else status,
        outcome=outcome,
        catalogue=catalogue,
        message="lookup.none" if empty else None,
        **values,
    )


# --- collective matches ------------------------------------------------------------------------


@pages.page(
    "/matches",
    name="matches",
    permission=Permission.match,
    methods=("GET", "POST"),
    nav="nav.matches",
)
def matches(ctx: PageContext) -> Response:
    try:
        catalogue = ctx.desk.catalogue(ctx.staff)
    except BrokerError as exc:
        return _broker_failure(ctx, exc, "matches.html", catalogue=None, matches=[])
    if ctx.form is not None:
        flags = [str(v) for v in ctx.form.getlist("flags")]
        try:
            number = ctx.desk.start_match(ctx.staff, ctx.field("purpose"), flags)
        except DeskError as exc:
            return ctx.render(
                "matches.html",
                422,
                catalogue=catalogue,
                matches=ctx.desk.matches(),
                message=exc.key,
                roster=ctx.desk.current_roster(),
            )
        return redirect(f"/matches/{number}")
    return ctx.render(
        "matches.html",
        catalogue=catalogue,
        matches=ctx.desk.matches(),
        roster=ctx.desk.current_roster(),
    )


def _match_or_none(ctx: PageContext) -> int | None:
    raw = str(ctx.params.get("number", ""))
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


@pages.page("/matches/{number}", name="match", permission=Permission.match)
def match(ctx: PageContext) -> Response:
    number = _match_or_none(ctx)
    found = ctx.desk.match(number) if number is not None else None
    if found is None:
        return ctx.not_found()
    catalogue = ctx.desk.catalogue(ctx.staff)
    summary = found.summary or {}
    charts = {}
    if summary:
        charts["flags"] = bars(
            [
                (catalogue.flag_label(code, ctx.lang), counts["beneficiaries"])
                for code, counts in summary["per_flag"].items()
            ],
            ctx.lang,
            title=ctx.t("match.per_flag"),
        )
        charts["sources"] = bars(
            [
                (ctx.t(f"source.{kind}"), counts["beneficiaries"])
                for kind, counts in summary["per_source"].items()
            ],
            ctx.lang,
            title=ctx.t("match.per_source"),
        )
        charts["governorates"] = bars(
            [
                (g["name"], g["beneficiaries"])
                for g in summary["per_governorate"]
                if g["beneficiaries"]
            ],
            ctx.lang,
            title=ctx.t("match.per_governorate"),
        )
    return ctx.render(
        "match.html", match=found, summary=summary, catalogue=catalogue, charts=charts
    )


_LISTS = {
    "beneficiaries.csv": ("beneficiaries.csv", "text/csv; charset=utf-8"),
    "households.csv": ("households.csv", "text/csv; charset=utf-8"),
    "beneficiaries.xlsx": ("beneficiaries.csv", None),
    "households.xlsx": ("households.csv", None),
}
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pages.page("/matches/{number}/{name}", name="download", permission=Permission.download)
def download(ctx: PageContext) -> Response:
    number = _match_or_none(ctx)
    name = str(ctx.params.get("name", ""))
    found = ctx.desk.match(number) if number is not None else None
    if found is None or found.state != "ready" or name not in _LISTS:
        return ctx.not_found()
    folder = ctx.desk.match_folder(found.id)
    source, media = _LISTS[name]
    path = folder / source
    if media is None:
        path = to_xlsx(folder / source, folder / f"{Path(name).stem}-{ctx.lang}.xlsx", ctx.lang)
        media = _XLSX
    ctx.desk.record(ctx.staff, "download", match=found.id, list=name)
    return FileResponse(path, media_type=media, filename=f"match-{found.id}-{name}")


# --- the roster --------------------------------------------------------------------------------


@pages.page("/roster", name="roster", permission=Permission.roster, nav="nav.roster")
def roster(ctx: PageContext) -> Response:
    return ctx.render(
        "roster.html",
        current=ctx.desk.current_roster(),
        rosters=ctx.desk.rosters(),
        held=ctx.desk.config.extract.exists(),
    )


def _upload_limit(desk: Desk) -> int:
    """The extract, and room for the form's other fields."""
    return desk.config.settings.max_extract_mb * MB + 64 * 1024


@pages.page(
    "/roster/register",
    name="roster_register",
    permission=Permission.roster,
    methods=("POST",),
    max_body=_upload_limit,
)
def roster_register(ctx: PageContext) -> Response:
    desk = ctx.desk
    values = {
        "current": desk.current_roster(),
        "rosters": desk.rosters(),
        "held": desk.config.extract.exists(),
    }
    upload = ctx.form.get("extract") if ctx.form is not None else None
    if ctx.field("again") == "1":
        if not desk.config.extract.exists():
            return ctx.render("roster.html", 422, message="roster.no_file", **values)
        desk.start_roster(ctx.staff, desk.config.extract)
        return redirect("/roster")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return ctx.render("roster.html", 422, message="roster.no_file", **values)
    desk.incoming_dir()
    target = desk.config.incoming / f"{uuid.uuid4().hex}.csv"
    with target.open("wb") as out:
        target.chmod(0o600)
        shutil.copyfileobj(upload.file, out, 1 << 20)
    desk.start_roster(ctx.staff, target)
    return redirect("/roster")


# --- staff -------------------------------------------------------------------------------------


@pages.page(
    "/staff", name="staff", permission=Permission.staff, methods=("GET", "POST"), nav="nav.staff"
)
def staff(ctx: PageContext) -> Response:
    message, status = None, 200
    if ctx.form is not None:
        action, name = ctx.field("action"), ctx.field("name")
        try:
            with ctx.desk.db.transaction() as session:
                if action == "add":
                    role = accounts.parse_role(ctx.field("role"))
                    user = accounts.add_user(session, name, role, ctx.field("password"))
                    eventlog.record(
                        session, ctx.staff.name, "staff.add", staff=user.name, role=role.value
                    )
                    message = "staff.added"
                elif action in ("disable", "enable"):
                    if name == ctx.staff.name:
                        raise AccountError("yourself", "self")
                    user = accounts.set_disabled(session, name, action == "disable")
                    if action == "disable":
                        sessions.end_all(session, user.id)
                    eventlog.record(session, ctx.staff.name, f"staff.{action}", staff=user.name)
                    return redirect("/staff")
        except AccountError as exc:
            message, status = f"staff.error.{exc.code}", 422
    with ctx.desk.db.transaction() as session:
        people = accounts.users(session)
    return ctx.render(
        "staff.html",
        status,
        people=people,
        roles=[r.value for r in Role],
        message=message,
        now=utcnow(),
    )


@pages.page("/log", name="log", permission=Permission.log, nav="nav.log")
def desk_log(ctx: PageContext) -> Response:
    with ctx.desk.db.transaction() as session:
        events = eventlog.recent(session, limit=300)
    return ctx.render("log.html", events=events)


# The case pages register themselves on `pages` (a module of their own: cases.py).
from matchhub.agency.desk import cases as _cases  # noqa: E402, F401
