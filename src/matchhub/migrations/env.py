from __future__ import annotations

import re

from alembic import context
from sqlalchemy import Engine

from matchhub.kit.migrate import render_item
from matchhub.migrations.metadata import Base

target_metadata = Base.metadata

_PARTITION = re.compile(r"^snapshot_rows_\d+$")


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # One partition a snapshot (PostgreSQL) is data, not schema: the models know the parent.
    return not (type_ == "table" and reflected and name and _PARTITION.match(name))


def run_migrations_online() -> None:
    engine: Engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            render_item=render_item,
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
