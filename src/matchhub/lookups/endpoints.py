from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Request

from matchhub.audit.recorder import AuditNote, ReadOnly
from matchhub.audit.service import AuditKeys
from matchhub.identity.auth import LookupCaller
from matchhub.kit.deps import SessionDep, SettingsDep
from matchhub.kit.errors import TooManyRequests
from matchhub.kit.ratelimit import RateLimiter, retry_after
from matchhub.kit.responses import errors
from matchhub.lookups import service
from matchhub.lookups.schemas import LookupRequest, LookupResponse
from matchhub.uploads.service import UploadContext

router = APIRouter(prefix="/v1", tags=["lookups"])


@router.post(
    "/lookups",
    response_model=LookupResponse,
    responses=errors(401, 403, 422, 429),
    dependencies=[ReadOnly],
)
def lookup(
    principal: LookupCaller,
    body: LookupRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    note: AuditNote,
) -> LookupResponse:
    """Flags of the given tokens, for roster members only, limited to the flags granted for
    the stated purpose; each with the asserting agency kind and the snapshot date."""
    limiter = cast(RateLimiter, request.app.state.lookup_limiter)
    wait = limiter.acquire(principal.code)
    if wait:
        raise TooManyRequests(
            "lookup rate exceeded for this agency", headers={"Retry-After": retry_after(wait)}
        )
    note.update(purpose=body.purpose, tokens_in=len(body.tokens))
    ctx = cast(UploadContext, request.app.state.uploads)
    answer = service.lookup(session, principal, body, ctx.rekeyer, settings.lookup_max_tokens)
    # Who was looked up, as keyed digests: the subject access trail, never the tokens.
    keys = cast(AuditKeys, request.app.state.audit_keys)
    note.update(
        subjects=[keys.subject(token) for token in body.tokens],
        on_roster=sum(r.on_roster for r in answer.results),
        flags_out=sum(len(r.flags) for r in answer.results),
        roster_version=answer.roster_version,
    )
    return answer
