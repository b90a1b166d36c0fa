"""``create_app(settings)``: the HTTP API. Engines and keys are built in the lifespan, never at
import, so building the app (for the OpenAPI document, say) touches nothing on disk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from matchhub import __version__
from matchhub.health.endpoints import router as health_router
from matchhub.identity.endpoints import router as identity_router
from matchhub.keystore.material import load_key_material
from matchhub.kit import handlers
from matchhub.kit.db import make_engine, make_sessionmaker
from matchhub.settings import Settings

DESCRIPTION = """\
matchhub brokers inter-agency data matching for social protection. Partner agencies push
keyed-hash tokens with flag codes; the welfare ministry asks, for beneficiaries on its own roster,
which flags the partners assert. Every caller is identified by its mutual-TLS client certificate.
Errors are `{"error": {"code": "...", "message": "..."}}` with a stable code.
"""


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.sqlalchemy_url)
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.keys = load_key_material(settings.paths)
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="matchhub",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # No interactive docs: they would load scripts from the internet and sit outside the
        # scope model. The document is committed in openapi/openapi.json.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    handlers.install(app)
    app.include_router(health_router)
    app.include_router(identity_router)
    return app
