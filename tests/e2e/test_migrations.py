"""Migrations are code: they run on both engines, agree with the models, and go down and up."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from matchhub.kit.db import make_engine
from matchhub.kit.migrate import downgrade, include_object, render_item, upgrade
from matchhub.migrations.metadata import Base
from matchhub.protocol import merkle


def _url(database_url: str | None, tmp_path: Path) -> str:
    return database_url or f"sqlite:///{tmp_path / 'migrations.db'}"


def test_models_and_migrations_agree(database_url: str | None, tmp_path: Path) -> None:
    engine = make_engine(_url(database_url, tmp_path))
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "render_item": render_item,
                    "include_object": include_object(connection.dialect.name),
                },
            )
            diff = compare_metadata(context, Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        engine.dispose()


def test_snapshot_rows_are_indexed_by_snapshot_on_sqlite_only(
    database_url: str | None, tmp_path: Path
) -> None:
    # PostgreSQL finds a snapshot's rows by its partition; building an index there only
    # lengthened the commit (0018).
    engine = make_engine(_url(database_url, tmp_path))
    try:
        upgrade(engine)
        names = {ix["name"] for ix in inspect(engine).get_indexes("snapshot_rows")}
        assert "ix_snapshot_rows_token" in names
        assert ("ix_snapshot_rows_snapshot" in names) == (engine.dialect.name == "sqlite")
    finally:
        engine.dispose()


def test_match_results_are_stored_with_lz4_on_postgresql(
    database_url: str | None, tmp_path: Path
) -> None:
    """0019: pglz took a fifth of a job's time storing its results; LZ4 a thirty-fifth. Down
    again, PostgreSQL's default comes back."""
    if database_url is None:
        pytest.skip("SQLite has no per-column compression")
    engine = make_engine(database_url)
    query = text(
        "SELECT attname, attcompression FROM pg_attribute "
        "WHERE attrelid = 'match_result_chunks'::regclass AND attname IN ('ordinals', 'sources')"
    )
    try:
        upgrade(engine)
        with engine.connect() as connection:
            assert dict(connection.execute(query).all()) == {
                "ordinals": "l",
                "sources": "l",
            }
        downgrade(engine, "0018")
        with engine.connect() as connection:
            assert set(dict(connection.execute(query).all()).values()) == {"p"}
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


def test_a_view_generation_is_the_database_clock_and_never_repeats(
    database_url: str | None, tmp_path: Path
) -> None:
    """0013: a bump sets the generation to the clock in microseconds (or one more than before),
    so a database restored to an earlier point never reaches again a generation a broker holds."""
    engine = make_engine(_url(database_url, tmp_path))
    bump = text(
        "INSERT INTO purposes (code, label_en, label_ar, legal_basis, created_at) "
        "VALUES (:c, 'x', 'x', 'x', CURRENT_TIMESTAMP)"
    )
    read = text("SELECT generation FROM view_generation")
    try:
        upgrade(engine)
        seen = []
        before = time.time()
        for n in range(3):
            with engine.begin() as connection:
                connection.execute(bump, {"c": f"p{n}"})
                seen.append(connection.execute(read).scalar_one())
        assert seen == sorted(set(seen))  # strictly increasing, even within one clock tick
        assert before * 1e6 - 5e6 < seen[0] < time.time() * 1e6 + 5e6  # the clock, not a count
        downgrade(engine, "0013-1")  # the revision below this one, wherever it is chained
        with engine.begin() as connection:
            connection.execute(bump, {"c": "p9"})
            assert connection.execute(read).scalar_one() == seen[-1] + 1  # a counter again
    finally:
        engine.dispose()


def test_results_move_into_chunks_and_back(database_url: str | None, tmp_path: Path) -> None:
    """0006 keeps every stored result: one row a beneficiary in, chunks out, and back down."""
    engine = make_engine(_url(database_url, tmp_path))
    rows = [{"job_id": "a" * 32, "ordinal": 7 * n, "sources": f"{n % 3},5"} for n in range(70_000)]
    rows += [{"job_id": "b" * 32, "ordinal": 3, "sources": "0"}]
    old = text(
        "INSERT INTO match_results (job_id, ordinal, sources) VALUES (:job_id, :ordinal, :sources)"
    )
    read_old = text("SELECT job_id, ordinal, sources FROM match_results ORDER BY job_id, ordinal")
    try:
        upgrade(engine, "0005")
        with engine.begin() as connection:
            connection.execute(old, rows)
        upgrade(engine, "0006")
        with engine.connect() as connection:
            chunks = connection.execute(
                text("SELECT job_id, chunk, rows FROM match_result_chunks ORDER BY job_id, chunk")
            ).all()
        assert [tuple(c) for c in chunks] == [
            ("a" * 32, 0, 65_536),
            ("a" * 32, 1, 4_464),
            ("b" * 32, 0, 1),
        ]
        downgrade(engine, "0005")
        with engine.connect() as connection:
            back = [dict(r._mapping) for r in connection.execute(read_old)]
        assert back == sorted(rows, key=lambda r: (r["job_id"], r["ordinal"]))
    finally:
        engine.dispose()


def test_the_audit_logs_subtrees_are_computed_for_an_existing_log(
    database_url: str | None, tmp_path: Path
) -> None:
    """0014 stores the root of every perfect subtree of a log that already exists (in batches
    larger than one), exactly those the appends would have stored, and refuses a log whose
    leaves do not give its frontier."""
    engine = make_engine(_url(database_url, tmp_path))
    leaves = [merkle.leaf_hash(n.to_bytes(4, "big")) for n in range(41_000)]
    frontier = merkle.CompactRange()
    expected: list[tuple[int, int, bytes]] = []
    for leaf in leaves:
        frontier.append(leaf, expected)
    entry = text(
        "INSERT INTO audit_entries (seq, created_at, kind, body, leaf_hash) "
        "VALUES (:seq, CURRENT_TIMESTAMP, 'request', '{}', :leaf)"
    )
    state = text("UPDATE audit_state SET size = :size, frontier = :frontier WHERE id = 1")
    try:
        upgrade(engine, "0014-1")  # the revision below this one, wherever it is chained
        with engine.begin() as connection:
            connection.execute(entry, [{"seq": n, "leaf": h} for n, h in enumerate(leaves)])
            connection.execute(
                state, {"size": len(leaves), "frontier": json.dumps(frontier.to_dict())}
            )
        upgrade(engine, "0014")
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT level, idx, hash FROM audit_nodes")).all()
        assert sorted((r[0], r[1], bytes(r[2])) for r in stored) == sorted(expected)
        downgrade(engine, "0014-1")
        with engine.begin() as connection:  # a rewritten leaf: the frontier no longer agrees
            connection.execute(
                text("ALTER TABLE audit_entries DISABLE TRIGGER ALL")
                if database_url
                else text("DROP TRIGGER audit_entries_no_update")
            )
            connection.execute(
                text("UPDATE audit_entries SET leaf_hash = :h WHERE seq = 7"),
                {"h": merkle.leaf_hash(b"forged")},
            )
        with pytest.raises(RuntimeError, match="altered"):
            upgrade(engine, "0014")
    finally:
        engine.dispose()


def test_roster_rows_move_into_partitions_and_back(
    database_url: str | None, tmp_path: Path
) -> None:
    """0020 keeps every roster row: one partition a roster on PostgreSQL (its key and token
    index built), and back down, a pending roster's rows (a table not yet attached) too."""
    engine = make_engine(_url(database_url, tmp_path))
    rows = [
        {"s": s, "o": o, "t": bytes([s, o % 256]) * 8, "x": bytes([o % 256]) * 48}
        for s in (3, 8)
        for o in range(300)
    ]
    insert = text(
        "INSERT INTO roster_rows (snapshot_id, ordinal, token, sealed) VALUES (:s, :o, :t, :x)"
    )
    read = text("SELECT snapshot_id, ordinal, token, sealed FROM roster_rows")

    def stored() -> list[tuple[int, int, bytes, bytes]]:
        with engine.connect() as connection:
            return sorted((r[0], r[1], bytes(r[2]), bytes(r[3])) for r in connection.execute(read))

    expected = sorted((r["s"], r["o"], r["t"], r["x"]) for r in rows)
    try:
        upgrade(engine, "0019")
        with engine.begin() as connection:
            connection.execute(insert, rows)
        upgrade(engine, "0020")
        assert stored() == expected
        pending = {"s": 11, "o": 0, "t": b"\x0b" * 16, "x": b"\x0b" * 48}
        if database_url:
            with engine.connect() as connection:
                partitions = connection.execute(
                    text(
                        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                        "WHERE i.inhparent = 'roster_rows'::regclass ORDER BY 1"
                    )
                ).scalars()
                assert list(partitions) == ["roster_rows_3", "roster_rows_8"]
            with engine.begin() as connection:  # an upload in flight: its table, unattached
                connection.execute(
                    text("CREATE TABLE roster_rows_11 (LIKE roster_rows INCLUDING DEFAULTS)")
                )
                connection.execute(
                    text(str(insert).replace("roster_rows", "roster_rows_11")), pending
                )
            assert stored() == expected
            expected = sorted([*expected, (11, 0, pending["t"], pending["x"])])
        names = {ix["name"] for ix in inspect(engine).get_indexes("roster_rows")}
        assert "ix_roster_rows_token" in names
        downgrade(engine, "0019")
        assert stored() == expected
        upgrade(engine)
        assert stored() == expected
    finally:
        engine.dispose()
