from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

router = APIRouter(tags=["health"])

UNSCOPED_ROUTES = frozenset({"/healthz", "/readyz"})


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "database unreachable or keys missing"}})
def readyz(request: Request) -> JSONResponse:
    """The database answers and the key material is loaded; and the broker processes alive
    by role (`processes`: `serve`, `worker`), as this process's last heartbeat counted them.
    Liveness facts only: any certificate the TLS layer admits may ask, so nothing here moves
    when an agency does something (the lookup view's state, which changes as snapshots are
    committed, is on /metrics, for the monitor)."""
    checks: dict[str, str] = {}
    factory = cast(sessionmaker[Session], request.app.state.sessionmaker)
    try:
        with factory() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError:
        checks["database"] = "unreachable"
    checks["keys"] = "ok" if getattr(request.app.state, "keys", None) is not None else "missing"
    ready = all(v == "ok" for v in checks.values())
    fleet = getattr(request.app.state, "fleet", None)
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "checks": checks,
            "processes": dict(fleet.counts) if fleet is not None else None,
        },
        status_code=200 if ready else 503,
    )
