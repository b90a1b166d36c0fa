"""Alembic, driven from code: ``matchhub db upgrade``, ``matchhub init`` and the tests all come
through here, so every database the broker touches has the schema the migrations make."""

from __future__ import annotations

from typing import Any, Literal

from alembic import command
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from sqlalchemy import Engine

from matchhub.kit.models import UTCDateTime


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Migrations name plain SQLAlchemy types, never our TypeDecorators, so they stay valid
    however the models' Python code moves."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", "matchhub:migrations")
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)
