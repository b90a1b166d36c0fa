"""Alembic, driven from code: ``matchhub db upgrade``, ``matchhub init`` and the tests all come
through here, so every database the broker touches has the schema the migrations make."""

from __future__ import annotations

import re
from collections.abc import Callable
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


_PARTITION = re.compile(r"^(snapshot|roster)_rows_\d+$")


def include_object(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """What comparing the models with a database of ``dialect`` looks at: not one partition a
    snapshot (PostgreSQL; data, not schema: the models know the parent), nor an index the
    models make on other backends only (``Index.ddl_if(dialect=...)``)."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table" and reflected and name and _PARTITION.match(name):
            return False
        # SQLAlchemy keeps an index's ddl_if condition here; Alembic's comparison ignores it.
        only = getattr(obj, "_ddl_if", None)
        if type_ == "index" and not reflected and only is not None and only.dialect:
            dialects = (only.dialect,) if isinstance(only.dialect, str) else only.dialect
            return dialect in dialects
        return True

    return include


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", "matchhub:migrations")
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)
