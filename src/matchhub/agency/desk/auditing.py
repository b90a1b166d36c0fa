"""The auditor's console: the desk set up with an auditor agency's certificate, its staff in the
``auditor`` role. Every page first witnesses the broker's log (witness.py) and shows "verified
up to N entries at T" or the red alarm; then:

* ``/audit``: the witness, its alarms and their acknowledgement, and an offline verification
  of an export uploaded from the auditor's machine;
* ``/audit/entries``: the log, filtered (agency, end user, route, outcome and error code,
  period) and paged by cursor, newest first;
* ``/audit/person``: every access to one person, from a national ID (hashed here, with the
  office's matching key if it holds one: the ID never leaves the desk) or a token;
* ``/audit/anomalies``: volume per day, agency and end user as charts, and the findings of
  anomalies.py with their reasoning;
* ``/audit/report`` and ``/audit/report.pdf``: a period's report, printable and as a PDF.

Nothing here changes the broker's log beyond the entries of the auditor's own reads. A
malformed filter, period, ID or token is refused here, with a message, before the broker is
asked; a refusal by the broker is shown with its code.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import UploadFile
from starlette.responses import Response

from matchhub.agency.desk import anomalies, i18n, witness
from matchhub.agency.desk.accounts import Permission
from matchhub.agency.desk.anomalies import Access, Findings, Thresholds
from matchhub.agency.desk.auditpdf import FontMissing, report_pdf, slots_label
from matchhub.agency.desk.broker import BrokerClient, BrokerError
from matchhub.agency.desk.charts import bars
from matchhub.agency.desk.pages import pages
from matchhub.agency.desk.service import Desk
from matchhub.agency.desk.web import PageContext, redirect
from matchhub.protocol.tokens import TokenError, is_token, normalise
from matchhub.protocol.verify import VerificationError, verify_export

PAGE_SIZE = 50
BROKER_PAGE = 1000
CHART_ROWS = 15
MB = 1024 * 1024
_AGENCY = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,63}$")
_END_USER = re.compile(r"^[a-z0-9][a-z0-9._:-]{7,63}$")
_ROUTE = re.compile(r"^/[A-Za-z0-9/{}_.-]{0,199}$")
_ERROR = re.compile(r"^[a-z0-9_]{1,64}$")
OUTCOMES = ("accepted", "refused")


class Refused(Exception):
    """A malformed filter, period, ID or token: ``key`` is the message shown."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


# --- the witness, on every page ----------------------------------------------------------------


def _pinned(desk: Desk) -> str | None:
    path = desk.config.audit_key
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def _visit(ctx: PageContext) -> witness.WitnessView:
    with ctx.desk.broker(ctx.staff) as broker:
        return witness.visit(ctx.desk.db, witness.BrokerLog(broker), _pinned(ctx.desk))


def _checked(ctx: PageContext) -> witness.WitnessView:
    """The witness's visit; a broker that cannot be reached is shown as such, not an alarm."""
    try:
        return _visit(ctx)
    except BrokerError as exc:
        return witness.status(ctx.desk.db, problem=exc.message)


def _render(ctx: PageContext, template: str, status: int = 200, **values: Any) -> Response:
    return ctx.render(template, status, witness=_checked(ctx), **values)


_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")


def ascii_digits(text: str) -> str:
    """Arabic-Indic and Eastern Arabic-Indic digits as ASCII (a date typed in Arabic)."""
    return text.translate(_DIGITS)


# --- parsing what the auditor typed ------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    first: date
    last: date

    @property
    def since(self) -> datetime:
        return datetime.combine(self.first, time(0), tzinfo=i18n.TIME_ZONE)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(0), tzinfo=i18n.TIME_ZONE)

    def query(self) -> dict[str, str]:
        return {"from": self.first.isoformat(), "to": self.last.isoformat()}


# The log began long after the first and ends long before the last: a day outside these has
# no entries, and at the calendar's ends a day's start or end in UTC cannot be written.
EARLIEST, LATEST = date(2000, 1, 1), date(9998, 12, 31)


def _day(text: str) -> date:
    try:
        day = date.fromisoformat(ascii_digits(text.strip()))
    except ValueError:
        raise Refused("audit.bad_date") from None
    if not EARLIEST <= day <= LATEST:
        raise Refused("audit.bad_date")
    return day


def parse_period(
    values: dict[str, str], longest: int, default_days: int | None, today: date
) -> Period | None:
    """``from`` and ``to`` (days, inclusive, local time), or the last ``default_days``."""
    first, last = values.get("from", "").strip(), values.get("to", "").strip()
    if not first and not last:
        if default_days is None:
            return None
        return Period(today - timedelta(days=default_days - 1), today)
    start = _day(first) if first else None
    end = _day(last) if last else today
    if start is None:
        start = end - timedelta(days=(default_days or 1) - 1)
    if start > end:
        raise Refused("audit.period_order")
    if (end - start).days + 1 > longest:
        raise Refused("audit.period_long")
    return Period(start, end)


def parse_filters(values: dict[str, str]) -> dict[str, str]:
    """The entries page's filters, checked as the broker would check them."""
    checks = {
        "agency": _AGENCY,
        "end_user": _END_USER,
        "route": _ROUTE,
        "error": _ERROR,
    }
    chosen: dict[str, str] = {}
    for name, pattern in checks.items():
        value = values.get(name, "").strip()
        if value:
            if not pattern.fullmatch(value):
                raise Refused(f"audit.bad_{name}")
            chosen[name] = value
    outcome = values.get("outcome", "").strip()
    if outcome:
        if outcome not in OUTCOMES:
            raise Refused("audit.bad_outcome")
        chosen["outcome"] = outcome
    return chosen


def parse_cursor(value: str) -> int:
    if not value:
        return -1
    if not value.isdigit() or len(value) > 18:
        raise Refused("audit.bad_cursor")
    return int(value)


def person_token(desk: Desk, typed: str) -> str:
    """The token of the person the auditor typed: a token as it is, or a national ID hashed
    here with the office's matching key. The ID goes no further than this function."""
    text = ascii_digits(typed.strip())
    if is_token(text.lower()):
        return text.lower()
    if len(text) >= 40 and re.fullmatch(r"[0-9a-fA-F]+", text):
        raise Refused("audit.person.bad_token")
    if not desk.has_key:
        raise Refused("audit.person.no_key")
    try:
        return desk.tokeniser.token(normalise(typed.strip(), desk.tokeniser.scheme))
    except (TokenError, ValueError):
        raise Refused("audit.person.bad_id") from None


def _values(ctx: PageContext) -> dict[str, str]:
    return {k: v for k, v in ctx.request.query_params.items() if isinstance(v, str)}


# --- reading the log ---------------------------------------------------------------------------


def _page(broker: BrokerClient, **params: Any) -> dict[str, Any]:
    return broker.json("GET", "/v1/audit/entries", params=params)


def scan(broker: BrokerClient, maximum: int, **params: Any) -> tuple[list[dict[str, Any]], bool]:
    """Every entry the filters select, oldest first, up to ``maximum``; and whether there were
    more."""
    found: list[dict[str, Any]] = []
    after = -1
    while True:
        page = _page(broker, after=after, limit=BROKER_PAGE, **params)
        found += page["entries"]
        if len(found) >= maximum:
            return found[:maximum], True
        if page["next_after"] is None:
            return found, False
        after = page["next_after"]


def _thresholds(desk: Desk) -> Thresholds:
    s = desk.config.settings
    return Thresholds(
        factor=s.audit_heavy_factor,
        min_lookups=s.audit_heavy_minimum,
        office_start=s.audit_office_start,
        office_end=s.audit_office_end,
        many_staff=s.audit_many_staff,
    )


def _today() -> date:
    return datetime.now(i18n.TIME_ZONE).date()


# --- the pages ---------------------------------------------------------------------------------


@pages.page(
    "/audit",
    name="audit",
    permission=Permission.audit,
    methods=("GET", "POST"),
    nav="nav.audit",
)
def audit(ctx: PageContext) -> Response:
    message = None
    if ctx.form is not None and ctx.field("action") == "acknowledge":
        number = ctx.field("alarm")
        try:
            if not number.isdigit():
                raise witness.AcknowledgeError("audit.ack_unknown")
            witness.acknowledge(ctx.desk.db, int(number), ctx.staff.name, ctx.field("reason"))
        except witness.AcknowledgeError as exc:
            message = exc.key
        else:
            return redirect("/audit")
    return _render(ctx, "audit.html", 422 if message else 200, message=message)


def _verify_limit(desk: Desk) -> int:
    return 2 * desk.config.settings.max_extract_mb * MB + 64 * 1024


@pages.page(
    "/audit/verify",
    name="audit_verify",
    permission=Permission.audit,
    methods=("POST",),
    max_body=_verify_limit,
)
def audit_verify(ctx: PageContext) -> Response:
    """An export (``matchhub audit export``: entries.jsonl and checkpoints.jsonl) verified here,
    offline, with the pinned key and against the checkpoint the witness last accepted."""
    view = witness.status(ctx.desk.db)
    files = {name: ctx.form.get(name) if ctx.form else None for name in ("entries", "checkpoints")}
    if not all(isinstance(f, UploadFile) and f.filename for f in files.values()):
        return ctx.render("audit.html", 422, witness=view, message="audit.verify.files")
    key = _pinned(ctx.desk) or witness.pinned_key(ctx.desk.db)
    if key is None:
        return ctx.render("audit.html", 422, witness=view, message="audit.verify.no_key")
    with tempfile.TemporaryDirectory(prefix="audit-export-") as folder:
        for name, upload in files.items():
            assert isinstance(upload, UploadFile)  # noqa: S101 (checked above)
            with (Path(folder) / f"{name}.jsonl").open("wb") as out:
                shutil.copyfileobj(upload.file, out, 1 << 20)
        try:
            report = verify_export(Path(folder), key, view.note)
        except (VerificationError, OSError, ValueError, KeyError) as exc:
            ctx.desk.record(ctx.staff, "audit.verify", "refused")
            return ctx.render(
                "audit.html", 422, witness=view, verification=None, verify_error=str(exc)
            )
    ctx.desk.record(
        ctx.staff, "audit.verify", entries=report.entries, checkpoints=report.checkpoints
    )
    return ctx.render("audit.html", witness=view, verification=report)


@pages.page(
    "/audit/entries",
    name="audit_entries",
    permission=Permission.audit,
    nav="nav.audit_entries",
)
def audit_entries(ctx: PageContext) -> Response:
    values = _values(ctx)
    shown = {
        k: values.get(k, "")
        for k in ("agency", "end_user", "route", "outcome", "error", "from", "to")
    }
    try:
        filters = parse_filters(values)
        period = parse_period(values, ctx.desk.config.settings.audit_period_days, None, _today())
        cursor = parse_cursor(values.get("after", ""))
    except Refused as exc:
        return _render(
            ctx, "audit_entries.html", 422, message=exc.key, entries=[], shown=shown, next_url=None
        )
    params: dict[str, Any] = dict(filters)
    if period is not None:
        params.update(since=period.since.isoformat(), until=period.until.isoformat())
    view = _checked(ctx)
    try:
        with ctx.desk.broker(ctx.staff) as broker:
            page = _page(broker, order="desc", after=cursor, limit=PAGE_SIZE, **params)
    except BrokerError as exc:
        return ctx.render(
            "audit_entries.html",
            422 if exc.status == 422 else 502,
            witness=view,
            broker_error=f"{exc.code}: {exc.message}",
            entries=[],
            shown=shown,
            next_url=None,
        )
    entries = [Access.from_entry(e) for e in page["entries"]]
    next_url = None
    if page["next_after"] is not None:
        keep = {k: v for k, v in shown.items() if v}
        next_url = "/audit/entries?" + urlencode({**keep, "after": page["next_after"]})
    ctx.desk.record(ctx.staff, "audit.entries", shown=len(entries), filters=sorted(filters))
    return ctx.render(
        "audit_entries.html",
        witness=view,
        entries=entries,
        shown=shown,
        next_url=next_url,
        first=cursor < 0,
    )


@pages.page(
    "/audit/person",
    name="audit_person",
    permission=Permission.audit,
    methods=("GET", "POST"),
    nav="nav.audit_person",
)
def audit_person(ctx: PageContext) -> Response:
    values: dict[str, Any] = {"has_key": ctx.desk.has_key, "trail": None, "truncated": False}
    if ctx.form is None:
        return _render(ctx, "audit_person.html", **values)
    try:
        token = person_token(ctx.desk, ctx.field("who"))
    except Refused as exc:
        ctx.desk.record(ctx.staff, "audit.person", "refused", reason=exc.key)
        return _render(ctx, "audit_person.html", 422, message=exc.key, **values)
    view = _checked(ctx)
    try:
        with ctx.desk.broker(ctx.staff) as broker:
            found, truncated = scan(broker, ctx.desk.config.settings.audit_scan_max, subject=token)
    except BrokerError as exc:
        return ctx.render(
            "audit_person.html", 502, witness=view, broker_error=exc.message, **values
        )
    trail = [Access.from_entry(e) for e in reversed(found)]
    ctx.desk.record(ctx.staff, "audit.person", accesses=len(trail))
    who = sorted({a.end_user or anomalies.NOBODY for a in trail})
    return ctx.render(
        "audit_person.html",
        witness=view,
        has_key=ctx.desk.has_key,
        trail=trail,
        who=who,
        truncated=truncated,
    )


def _analyse(ctx: PageContext, period: Period) -> Findings:
    """The period counted by the broker (``GET /v1/audit/activity``), and the findings."""
    thresholds = _thresholds(ctx.desk)
    offset = period.since.utcoffset()
    with ctx.desk.broker(ctx.staff) as broker:
        answer = broker.json(
            "GET",
            "/v1/audit/activity",
            params={
                "since": period.since.isoformat(),
                "until": period.until.isoformat(),
                "utc_offset_minutes": int(offset.total_seconds() // 60) if offset else 0,
                "many_staff": thresholds.many_staff,
            },
        )
    return anomalies.analyse(anomalies.Activity.from_answer(answer), thresholds)


def _period_or_refusal(ctx: PageContext, default_days: int) -> Period:
    period = parse_period(
        _values(ctx), ctx.desk.config.settings.audit_period_days, default_days, _today()
    )
    assert period is not None  # noqa: S101 (a default is given)
    return period


@pages.page(
    "/audit/anomalies",
    name="audit_anomalies",
    permission=Permission.audit,
    nav="nav.audit_anomalies",
)
def audit_anomalies(ctx: PageContext) -> Response:
    shown = {k: _values(ctx).get(k, "") for k in ("from", "to")}
    try:
        period = _period_or_refusal(ctx, 7)
    except Refused as exc:
        return _render(
            ctx, "audit_anomalies.html", 422, message=exc.key, shown=shown, findings=None
        )
    view = _checked(ctx)
    try:
        findings = _analyse(ctx, period)
    except BrokerError as exc:
        return ctx.render(
            "audit_anomalies.html",
            502,
            witness=view,
            broker_error=exc.message,
            shown=shown,
            findings=None,
        )
    ctx.desk.record(ctx.staff, "audit.anomalies", entries=findings.entries)
    return ctx.render(
        "audit_anomalies.html",
        witness=view,
        shown=period.query(),
        period=period,
        findings=findings,
        thresholds=_thresholds(ctx.desk),
        slots=slots_label,
        charts=_charts(ctx, findings),
    )


def _charts(ctx: PageContext, findings: Findings) -> dict[str, str]:
    lang = ctx.lang
    v = findings.volume
    return {
        "days": bars(
            [(i18n.day(d, lang), n) for d, n in v.per_day.items()],
            lang,
            title=ctx.t("audit.chart.days"),
        ),
        "agencies": bars(
            list(v.per_agency.items())[:CHART_ROWS], lang, title=ctx.t("audit.chart.agencies")
        ),
        "users": bars(
            list(v.per_end_user.items())[:CHART_ROWS], lang, title=ctx.t("audit.chart.users")
        ),
    }


@dataclass
class Report:
    period: Period
    findings: Findings
    witness: witness.WitnessView
    made_at: datetime


def _report(ctx: PageContext, period: Period) -> Report:
    view = _checked(ctx)
    return Report(period, _analyse(ctx, period), view, datetime.now(i18n.TIME_ZONE))


@pages.page(
    "/audit/report", name="audit_report", permission=Permission.audit, nav="nav.audit_report"
)
def audit_report(ctx: PageContext) -> Response:
    shown = {k: _values(ctx).get(k, "") for k in ("from", "to")}
    try:
        period = _period_or_refusal(ctx, 30)
    except Refused as exc:
        return _render(ctx, "audit_report.html", 422, message=exc.key, shown=shown, report=None)
    try:
        report = _report(ctx, period)
    except BrokerError as exc:
        return _render(
            ctx, "audit_report.html", 502, broker_error=exc.message, shown=shown, report=None
        )
    ctx.desk.record(ctx.staff, "audit.report", entries=report.findings.entries)
    return ctx.render(
        "audit_report.html",
        witness=report.witness,
        shown=period.query(),
        report=report,
        report_thresholds=_thresholds(ctx.desk),
        slots=slots_label,
        pdf_url="/audit/report.pdf?" + urlencode(period.query()),
    )


@pages.page("/audit/report.pdf", name="audit_report_pdf", permission=Permission.audit)
def audit_report_download(ctx: PageContext) -> Response:
    try:
        period = _period_or_refusal(ctx, 30)
    except Refused as exc:
        return _render(ctx, "audit_report.html", 422, message=exc.key, shown={}, report=None)
    try:
        report = _report(ctx, period)
    except BrokerError as exc:
        return _render(
            ctx, "audit_report.html", 502, broker_error=exc.message, shown={}, report=None
        )
    try:
        pdf = report_pdf(report, ctx.lang)
    except FontMissing:  # the desk machine lacks fonts-noto-core or fonts-dejavu-core
        return _render(
            ctx, "audit_report.html", 503, message="audit.font_missing", shown={}, report=None
        )
    ctx.desk.record(ctx.staff, "audit.report_pdf", entries=report.findings.entries)
    name = f"audit-report-{period.first.isoformat()}-{period.last.isoformat()}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )
