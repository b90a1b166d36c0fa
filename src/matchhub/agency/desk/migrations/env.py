from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from matchhub.agency.desk.db import VERSION_TABLE
from matchhub.agency.desk.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine: Engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=VERSION_TABLE,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            # Only the desk's own tables: a database shared with the broker in development
            # holds the broker's too, which are none of the desk's business.
            include_name=lambda name, type_, parent: (
                type_ != "table" or name is None or name in target_metadata.tables
            ),
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
