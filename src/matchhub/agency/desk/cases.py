"""The case pages: the queue, one case and its steps, the notice letter, and opening cases
from a match's list or a lookup's answer. The work itself is `casework`'s; these turn forms
into its calls and its refusals into messages. No page holds a token: a case is named by the
desk's number, a person by their place in the list or the roster's index."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.responses import Response

from matchhub.agency.desk import accounts, casework, i18n
from matchhub.agency.desk.accounts import Permission, Role
from matchhub.agency.desk.broker import BrokerError
from matchhub.agency.desk.casework import CaseError
from matchhub.agency.desk.models import utcnow
from matchhub.agency.desk.pages import pages
from matchhub.agency.desk.web import PageContext, redirect

_MESSAGES = {"assigned", "opened", "opened_one", "stepped", "noted"}


def _number(ctx: PageContext) -> int | None:
    raw = str(ctx.params.get("number", ""))
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


def _numbers(ctx: PageContext, name: str) -> list[int]:
    values = ctx.form.getlist(name) if ctx.form is not None else []
    return [int(v) for v in values if isinstance(v, str) and v.isdigit() and len(v) < 10]


def _refused(ctx: PageContext, error: CaseError, status: int = 422) -> Response:
    if error.code == "not_found":
        return ctx.not_found()
    return ctx.render(
        "cases_error.html",
        status,
        title="case.error.title",
        text=_refusal(error),
        detail=error.message,
    )


def _refusal(error: CaseError) -> str:
    """The message key of a refusal; the broker's own message when the desk has no words."""
    key = f"case.error.{error.code}"
    return key if key in i18n.MESSAGES else "case.error.broker"


def _caseworkers(ctx: PageContext) -> list[str]:
    with ctx.desk.db.transaction() as session:
        return [
            u.name
            for u in accounts.users(session)
            if not u.disabled and u.role in (Role.caseworker.value, Role.supervisor.value)
        ]


@pages.page("/cases", name="cases", permission=Permission.cases, methods=("GET",), nav="nav.cases")
def queue(ctx: PageContext) -> Response:
    query = ctx.request.query_params
    chosen = {k: query.get(k, "") for k in ("state", "governorate", "flag", "mine")}
    broker_error = None
    try:
        catalogue = ctx.desk.catalogue(ctx.staff)
        casework.refresh(ctx.desk, ctx.staff)
    except BrokerError as exc:
        broker_error, catalogue = exc.message, None
    raw = query.get("from", "0")
    offset = int(raw) if raw.isdigit() and len(raw) < 10 else 0
    shown = casework.queue(
        ctx.desk,
        state=chosen["state"] or "open",
        governorate=chosen["governorate"],
        flag=chosen["flag"],
        assignee=ctx.staff.id if chosen["mine"] else None,
        offset=offset,
        limit=casework.QUEUE_PAGE + 1,
    )
    more = len(shown) > casework.QUEUE_PAGE
    shown = shown[: casework.QUEUE_PAGE]
    pages = {
        "previous": max(offset - casework.QUEUE_PAGE, 0) if offset else None,
        "next": offset + casework.QUEUE_PAGE if more else None,
        "query": urlencode({k: v for k, v in chosen.items() if v}),
    }
    message = query.get("m", "")
    return ctx.render(
        "cases.html",
        cases=shown,
        pages=pages,
        chosen=chosen,
        states=casework.STATES,
        governorates=casework.governorates(ctx.desk),
        catalogue=catalogue,
        caseworkers=_caseworkers(ctx) if ctx.staff.may(Permission.assign) else [],
        message=f"cases.m.{message}" if message in _MESSAGES else None,
        count=query.get("n", ""),
        skipped=query.get("skipped", "0"),
        refused=query.get("refused", "0"),
        why=_refusal(CaseError(query.get("why", ""), "")),
        broker_error=broker_error,
        now=utcnow(),
    )


@pages.page("/cases/assign", name="cases_assign", permission=Permission.assign, methods=("POST",))
def assign(ctx: PageContext) -> Response:
    assert ctx.form is not None  # noqa: S101 (a POST has its form)
    try:
        count = casework.assign(ctx.desk, ctx.staff, _numbers(ctx, "case"), ctx.field("to"))
    except CaseError as exc:
        return _refused(ctx, exc)
    return redirect(f"/cases?m=assigned&n={count}")


@pages.page("/cases/rates", name="cases_rates", permission=Permission.cases)
def rates(ctx: PageContext) -> Response:
    """How the flags fared: the broker's confirmation rate per flag and per source, from the
    ministry's own cases (its own, so nothing is suppressed)."""
    try:
        catalogue = ctx.desk.catalogue(ctx.staff)
        with ctx.desk.broker(ctx.staff) as broker:
            feedback = broker.feedback()
    except BrokerError as exc:
        return ctx.render(
            "cases_rates.html", 502, broker_error=exc.message, feedback={}, catalogue=None
        )
    return ctx.render(
        "cases_rates.html",
        feedback=feedback,
        catalogue=catalogue,
        reasons=casework.REFUTE_REASONS,
    )


# Before /cases/{number}: Starlette takes the first route whose path matches.
@pages.page(
    "/cases/from-lookup",
    name="cases_from_lookup",
    permission=Permission.cases,
    methods=("POST",),
)
def from_lookup(ctx: PageContext) -> Response:
    assert ctx.form is not None  # noqa: S101
    flags = []
    for value in ctx.form.getlist("flag"):
        parts = str(value).split("|")
        if len(parts) == 3:
            flags.append(dict(zip(("code", "source", "as_of"), parts, strict=True)))
    fields = [ctx.field(k) for k in ("version", "row", "seq")]
    if not all(f.isdigit() and len(f) < 12 for f in fields[:2]):
        return _refused(ctx, CaseError("invalid", "an invalid request"))
    seq = int(fields[2]) if fields[2].isdigit() and len(fields[2]) < 19 else None
    try:
        number = casework.open_from_lookup(
            ctx.desk,
            ctx.staff,
            audit_seq=seq,
            version=int(fields[0]),
            row=int(fields[1]),
            flags=flags,
        )
    except CaseError as exc:
        return _refused(ctx, exc)
    return redirect(f"/cases/{number}?m=opened_one")


@pages.page("/cases/{number}", name="case", permission=Permission.cases, methods=("GET", "POST"))
def case(ctx: PageContext) -> Response:
    number = _number(ctx)
    if number is None:
        return ctx.not_found()
    message, detail, status = None, None, 200
    if ctx.form is not None:
        try:
            if ctx.field("action") == "note":
                casework.add_note(ctx.desk, ctx.staff, number, ctx.field("text"))
                return redirect(f"/cases/{number}?m=noted")
            casework.move(ctx.desk, ctx.staff, number, ctx.field("to"), ctx.field("reason"))
            return redirect(f"/cases/{number}?m=stepped")
        except CaseError as exc:
            if exc.code == "not_found":
                return ctx.not_found()
            message, detail, status = _refusal(exc), exc.message, 409
    try:
        shown = casework.view(ctx.desk, ctx.staff, number)
    except CaseError:
        return ctx.not_found()
    done = ctx.request.query_params.get("m", "")
    if message is None and done in _MESSAGES:
        message = f"cases.m.{done}"
    try:
        catalogue = ctx.desk.catalogue(ctx.staff)
    except BrokerError:
        catalogue = None
    mine = ctx.staff.role is not Role.caseworker or shown.case.assigned_to == ctx.staff.id
    return ctx.render(
        "case.html",
        status,
        shown=shown,
        catalogue=catalogue,
        message=message,
        detail=detail,
        may_move=ctx.staff.may(Permission.casework) and mine,
        reasons=casework.REFUTE_REASONS,
        notice_states=casework.NOTICE_STATES,
    )


@pages.page("/cases/{number}/notice", name="case_notice", permission=Permission.cases)
def notice(ctx: PageContext) -> Response:
    number = _number(ctx)
    if number is None:
        return ctx.not_found()
    try:
        letter = casework.notice(ctx.desk, ctx.staff, number)
    except CaseError as exc:
        return _refused(ctx, exc, 409)
    catalogue = ctx.desk.catalogue(ctx.staff)
    ctx.desk.record(ctx.staff, "case.notice", case=number)
    return ctx.render("notice.html", letter=letter, catalogue=catalogue, today=utcnow())


@pages.page(
    "/cases/from-match/{number}",
    name="cases_from_match",
    permission=Permission.cases,
    methods=("GET", "POST"),
)
def from_match(ctx: PageContext) -> Response:
    number = _number(ctx)
    if number is None:
        return ctx.not_found()
    if ctx.form is not None:
        try:
            opened = casework.open_from_match(ctx.desk, ctx.staff, number, _numbers(ctx, "pick"))
        except CaseError as exc:
            return _refused(ctx, exc)
        done = {"m": "opened", "n": len(opened.opened), "skipped": opened.skipped}
        if opened.refused:
            done |= {"refused": len(opened.refused), "why": opened.refused[0][1]}
        return redirect(f"/cases?{urlencode(done)}")
    query = ctx.request.query_params
    chosen = {k: query.get(k, "") for k in ("governorate", "flag")}
    try:
        entries = casework.listed(ctx.desk, number, **chosen)
    except CaseError as exc:
        return _refused(ctx, exc, 409)
    return ctx.render(
        "cases_open.html",
        match=number,
        entries=entries[: casework.MAX_OPEN_AT_ONCE],
        more=max(0, len(entries) - casework.MAX_OPEN_AT_ONCE),
        chosen=chosen,
        catalogue=ctx.desk.catalogue(ctx.staff),
    )
