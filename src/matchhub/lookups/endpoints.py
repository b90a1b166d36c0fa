from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, cast

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from matchhub.audit.service import AuditKeys
from matchhub.identity.auth import (
    END_USER_PARAMETER,
    CredentialViews,
    LookupCaller,
    authenticate_request,
    from_gate,
    viewed,
)
from matchhub.identity.scopes import Scope
from matchhub.kit.errors import MatchhubError, StaleGeneration, TooManyRequests
from matchhub.kit.ratelimit import RateLimiter, retry_after
from matchhub.kit.requests import (
    ReadOnly,
    audit_fail_closed,
    note_of,
    record_answer,
    request_session,
    settings_of,
)
from matchhub.kit.responses import errors
from matchhub.lookups import service
from matchhub.lookups.inmemory import HubView
from matchhub.lookups.schemas import LookupRequest, LookupResponse
from matchhub.uploads.service import UploadContext


class _LookupRoute(APIRoute):
    """The lookup route, with a shortcut for the request it gets nearly every time: a JSON body
    the model takes as it is, from a caller the gate found in the current view. FastAPI's
    request handling (the dependency tree solved, the body parsed and then validated, the
    answer checked for a response to send) was about a sixth of a lookup's time on the event
    loop (docs/benchmarks.md, "Broker CPU per lookup", its fourth round). The shortcut calls the
    same endpoint with what its dependencies would have given it; any other request, or one the
    shortcut is unsure of, goes through FastAPI's handler as before, which answers it (a 422
    for a body the model refuses, and so on) exactly as if there were no shortcut. The route,
    its document and its markers (read-only, the scope) are FastAPI's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        documented = super().get_route_handler()

        async def handler(request: Request) -> Response:
            response = await _shortcut(request)
            return response if response is not None else await documented(request)

        return handler


router = APIRouter(prefix="/v1", tags=["lookups"], route_class=_LookupRoute)


async def _shortcut(request: Request) -> Response | None:
    """The endpoint's answer, called as FastAPI would call it, for the plain case only; None
    for anything else. What the dependencies would do, and nothing FastAPI would refuse:

    - the caller: ``require_viewed``'s first case, the gate's principal (the end user it acts
      for already named) from the view that is current, in scope;
    - ``ReadOnly`` does nothing when called (it marks the route, which stays marked);
    - the body: ``application/json`` exactly, parsed and validated in one pass by the model.
      FastAPI parses JSON with ``json.loads`` and validates the result; for a UTF-8 JSON
      object both take the same values (a repeated key's last), and whatever the model's
      own parser refuses (another encoding, ``NaN``, any invalid body) is left to FastAPI."""
    if request.headers.get("content-type") != "application/json":
        return None
    view = cast(CredentialViews, request.app.state.lookup_views).current()
    principal = None if view is None else from_gate(request, view)
    if principal is None or Scope.lookup not in principal.scopes:
        return None
    try:
        body = LookupRequest.model_validate_json(await request.body())
    except ValidationError:
        return None
    return await lookup(principal, body, request)


@router.post(
    "/lookups",
    response_model=LookupResponse,
    responses=errors(401, 403, 408, 413, 422, 429),
    dependencies=[ReadOnly],
    openapi_extra={"parameters": [END_USER_PARAMETER]},
)
async def lookup(principal: LookupCaller, body: LookupRequest, request: Request) -> Response:
    """Flags of the given tokens, for roster members only, limited to the flags granted for
    the stated purpose; each with the asserting agency kind and the snapshot date."""
    # The request's session, settings and audit note are taken here rather than as
    # dependencies: an answer from the view needs no session, and each dependency costs the
    # hot path its share of the event loop (docs/benchmarks.md).
    settings = settings_of(request)
    note = note_of(request)
    limiter = cast(RateLimiter, request.app.state.lookup_limiter)
    wait = limiter.acquire(principal.code)
    if wait:
        raise TooManyRequests(
            "lookup rate exceeded for this agency", headers={"Retry-After": retry_after(wait)}
        )
    note.update(purpose=body.purpose, tokens_in=len(body.tokens))
    rekeyer = cast(UploadContext, request.app.state.uploads).rekeyer
    limit = settings.lookup_max_tokens
    view = cast(HubView | None, viewed(request))
    if view is not None:
        # The hot path: the answer from the in-memory view, on the event loop, sent only once
        # its audit entry has committed with the view's generation still the database's. A
        # refusal, or a view the hub has moved past, is answered again from the database.
        try:
            fast: service.Answer | None = service.lookup_in_view(
                view, principal, body, rekeyer, limit
            )
        except MatchhubError:
            fast = None
        if fast is not None:
            _note_answer(request, note, body, fast, view.generation)
            try:
                with audit_fail_closed():
                    reference = await record_answer(request)
            except StaleGeneration:
                # Not sent, so not recorded: the entry will say what the database answered.
                for key in ANSWER_NOTE:
                    note.pop(key, None)
            else:
                return _sent(fast, reference)
    async with request_session(request) as session:
        if view is not None:
            principal = await run_in_threadpool(
                authenticate_request, request, session, settings, Scope.lookup
            )
        answer = await run_in_threadpool(service.lookup, session, principal, body, rekeyer, limit)
        _note_answer(request, note, body, answer, None)
        # Recorded here rather than after the route, so the answer can name its entry: the
        # reference a case is opened from (cases/service.py).
        with audit_fail_closed():
            reference = await record_answer(request)
    return _sent(answer, reference)


def _sent(answer: service.Answer, reference: int | None) -> Response:
    """The answer as the route's response: :class:`LookupResponse`'s JSON (the model is what
    the API document shows), serialised once."""
    return Response(answer.json(reference), media_type="application/json")


ANSWER_NOTE = (
    "subjects",
    "flagged",
    "on_roster",
    "flags_out",
    "roster_version",
    "view_generation",
)


def _note_answer(
    request: Request,
    note: dict[str, object],
    body: LookupRequest,
    answer: service.Answer,
    generation: int | None,
) -> None:
    # Who was looked up, as keyed digests: the subject access trail, never the tokens.
    keys = cast(AuditKeys, request.app.state.audit_keys)
    note.update(
        subjects=[keys.subject(token) for token in body.tokens],
        # Each flag answered, as a keyed digest of (token, flag): what a case opened from
        # this lookup is checked against, and nothing an auditor can read a person's flags from.
        flagged=sorted(
            {keys.answer(r["token"], f["code"]) for r in answer.results for f in r["flags"]}
        ),
        on_roster=sum(r["on_roster"] for r in answer.results),
        flags_out=sum(len(r["flags"]) for r in answer.results),
        roster_version=answer.roster_version,
        view_generation=generation,
    )
