from __future__ import annotations

from fastapi import APIRouter

from matchhub.identity.auth import IdentityReader
from matchhub.identity.schemas import WhoAmI
from matchhub.kit.requests import ReadOnly
from matchhub.kit.responses import AUTH_ERRORS

router = APIRouter(prefix="/v1", tags=["identity"])


@router.get("/whoami", response_model=WhoAmI, responses=AUTH_ERRORS, dependencies=[ReadOnly])
def whoami(principal: IdentityReader) -> WhoAmI:
    """The calling agency, as identified by its client certificate, with its scopes."""
    return WhoAmI(
        code=principal.code,
        kind=principal.kind,
        name=principal.name,
        scopes=sorted(principal.scopes),
        certificate_fingerprint=principal.certificate_fingerprint,
        certificate_serial=principal.certificate_serial,
    )
