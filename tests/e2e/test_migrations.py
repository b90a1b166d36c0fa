"""Migrations are code: they run on both engines, agree with the models, and go down and up."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from matchhub.kit.db import make_engine
from matchhub.kit.migrate import downgrade, render_item, upgrade
from matchhub.models import Base


def _url(database_url: str | None, tmp_path: Path) -> str:
    return database_url or f"sqlite:///{tmp_path / 'migrations.db'}"


def test_models_and_migrations_agree(database_url: str | None, tmp_path: Path) -> None:
    engine = make_engine(_url(database_url, tmp_path))
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_item": render_item}
            )
            diff = compare_metadata(context, Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(database_url: str | None, tmp_path: Path) -> None:
    engine = make_engine(_url(database_url, tmp_path))
    try:
        upgrade(engine)
        tables = set(inspect(engine).get_table_names())
        assert {"agencies", "certificates", "uploads", "snapshots", "snapshot_rows"} <= tables
        downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) == tables
    finally:
        engine.dispose()
