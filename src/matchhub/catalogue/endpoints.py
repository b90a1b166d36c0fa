from __future__ import annotations

from fastapi import APIRouter

from matchhub.catalogue import service
from matchhub.catalogue.schemas import Catalogue
from matchhub.identity.auth import CatalogueReader
from matchhub.kit.requests import ReadOnly, SessionDep
from matchhub.kit.responses import AUTH_ERRORS

router = APIRouter(prefix="/v1", tags=["catalogue"])


@router.get("/flags", response_model=Catalogue, responses=AUTH_ERRORS, dependencies=[ReadOnly])
def list_flags(principal: CatalogueReader, session: SessionDep) -> Catalogue:
    """The flag catalogue as the caller may see it: a provider the flags it may assert, a
    consumer the flags granted to it with their purposes, an auditor all of it."""
    return service.visible_catalogue(session, principal)
