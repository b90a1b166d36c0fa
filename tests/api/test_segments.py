"""Snapshot segments (kit/segments.py, uploads/segments.py), on SQLite and PostgreSQL: a file
is used only when it is whole and is exactly the snapshot the database describes; anything
else (truncated, corrupt, half-written by a killed process, of another database history, of a
replaced snapshot) is rebuilt from the database or swept, and no segment holds a wire token."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import xxhash
from sqlalchemy import make_url
from sqlalchemy.orm import Session

from matchhub.kit import segments as fmt
from matchhub.kit.db import make_engine
from matchhub.kit.epoch import Epoch
from matchhub.kit.segments import SegmentInvalid, halves, open_segment
from matchhub.protocol.kinds import AgencyKind
from matchhub.uploads.repository import SnapshotRepository, SnapshotRows
from matchhub.uploads.segments import SegmentStore, SnapshotRef
from tests.api.test_lookup_view import _answered_from_view
from tests.api.test_queries import LOAN, PURPOSE, World, _flags, _lookup, _ndjson, _wait, _world
from tests.conftest import Hub, InProcessApi
from tests.e2e.helpers import stored


def _refs(hub: Hub, store: SegmentStore) -> dict[int, SnapshotRef]:
    with hub.session() as session:
        ids = [int(r.id) for r in SnapshotRepository(session).current_refs()]
        return store.refs(session, ids)


def _truth(hub: Hub, ref: SnapshotRef) -> list[bytes]:
    """The snapshot's stored tokens as the database holds them, sorted."""
    with hub.session() as session:
        rows = SnapshotRows(session)
        data = (
            rows.roster_tokens(ref.id)[1] if ref.kind == "roster" else rows.provider_tokens(ref.id)
        )
    return sorted(data[i : i + 16] for i in range(0, len(data), 16))


def _tokens(store: SegmentStore, hub: Hub, ref: SnapshotRef) -> list[bytes]:
    with hub.session() as session:
        segment = store.segment(session, ref)
    hi = segment.hi.astype(">u8").tobytes()
    lo = segment.lo.astype(">u8").tobytes()
    return [hi[i : i + 8] + lo[i : i + 8] for i in range(0, len(hi), 8)]


@pytest.fixture
def world(api: InProcessApi) -> World:
    return _world(api)


def test_segments_hold_the_databases_rows_and_are_rebuilt_when_damaged(
    world: World, tmp_path: Path
) -> None:
    hub = world.broker.hub
    store = SegmentStore(tmp_path / "segments")
    refs = _refs(hub, store)
    assert {r.kind for r in refs.values()} == {"flag", "roster"}
    for ref in refs.values():
        assert _tokens(store, hub, ref) == _truth(hub, ref)
    assert store.built == len(refs)

    roster = next(r for r in refs.values() if r.kind == "roster")
    loans = next(r for r in refs.values() if r.kind == "flag" and r.rows > 1)
    damages = {
        "truncated": lambda data: data[: len(data) - 7],
        "a token flipped": lambda data: data[:70] + bytes([data[70] ^ 1]) + data[71:],
        "a trailer byte flipped": lambda data: data[:-1] + bytes([data[-1] ^ 1]),
        "empty": lambda _data: b"",
    }
    for what, damage in damages.items():
        for ref in (roster, loans):
            path = store.path(ref)
            path.write_bytes(damage(path.read_bytes()))
            with pytest.raises(SegmentInvalid):
                open_segment(path, store.ident(ref))
            fresh = SegmentStore(store.directory)  # another process: nothing verified yet
            assert _tokens(fresh, hub, ref) == _truth(hub, ref), what
            assert (fresh.built, fresh.rejected) == (1, 1), what
            open_segment(path, store.ident(ref))  # whole again


def test_a_segment_out_of_order_or_of_another_snapshot_is_not_trusted(
    world: World, tmp_path: Path
) -> None:
    hub = world.broker.hub
    store = SegmentStore(tmp_path / "segments")
    loans = sorted(
        (r for r in _refs(hub, store).values() if r.kind == "flag" and r.rows > 1),
        key=lambda r: r.id,
    )
    first, second = loans[0], loans[1]
    _tokens(store, hub, first)
    # The first's file under the second's name: its header names the first.
    store.path(second).write_bytes(store.path(first).read_bytes())
    with pytest.raises(SegmentInvalid, match="header"):
        open_segment(store.path(second), store.ident(second))
    # Same rows, another upload: a restored database that issued the id again.
    other = SnapshotRef(first.id, first.kind, first.rows, "0" * 32)
    with pytest.raises(SegmentInvalid, match="header"):
        open_segment(store.path(first), store.ident(other))
    # Whole and checksummed but not sorted: written by something else than the writer.
    ident = store.ident(first)
    hi, lo = halves(b"".join(_truth(hub, first)))
    body = ident.header() + hi[::-1].astype("<u8").tobytes() + lo[::-1].astype("<u8").tobytes()
    path = store.path(first)
    path.write_bytes(body + xxhash.xxh3_128(body).digest() + fmt.END)
    with pytest.raises(SegmentInvalid, match="order"):
        open_segment(path, ident)


def test_files_are_the_databases_modes_and_hold_no_wire_token(api: InProcessApi) -> None:
    """The app's own segments, built by its view and its background work."""
    world = _world(api)
    hub = api.hub
    monitor = hub.add_agency("prometheus", AgencyKind.monitor)  # /metrics is the monitor's
    store: SegmentStore = api.app.state.segments  # named by the database's history
    refs = _refs(hub, store)
    _answered_from_view(world, world.ids[:1])  # the view has mapped every current segment
    with hub.session() as session:
        store.prepare(session)
    with api.client(monitor) as client:
        exported = dict(
            line.split()[:2]
            for line in client.get("/metrics").text.splitlines()
            if line.startswith("matchhub_segments_")
        )
    assert float(exported["matchhub_segments_built"]) >= len(refs)
    assert float(exported["matchhub_segments_rejected"]) == 0
    folder = hub.paths.segments
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = [p for p in folder.iterdir() if not p.name.startswith(".")]
    assert len(files) == len(refs)
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    held = b"".join(p.read_bytes() for p in files)
    for raw in world.ids:
        wire = world.toks[raw]
        assert bytes.fromhex(wire) not in held
        assert wire.encode() not in held
        assert raw.encode() not in held
    # What is there is the stored form (its high half, as the segment lays it out), so the
    # search above would have found a wire token laid out the same way.
    for raw in world.roster[:5]:
        high = np.frombuffer(stored(hub, world.toks[raw])[:8], ">u8").astype("<u8").tobytes()
        assert high in held
        wire_high = np.frombuffer(bytes.fromhex(world.toks[raw])[:8], ">u8").astype("<u8")
        assert wire_high.tobytes() not in held


_KILLED_WRITER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import numpy as np
    from matchhub.kit import segments

    folder, ident, rows = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    ident = segments.SegmentId(**{**ident, "kind": segments.SegmentKind(ident["kind"])})
    write = segments._write_block
    blocks = []

    def write_then_hang(out, digest, data):
        write(out, digest, data)
        blocks.append(1)
        if len(blocks) == 2:  # the header and the first block are out
            out.flush()
            print("writing", flush=True)
            time.sleep(600)

    segments._write_block = write_then_hang
    tokens = np.random.default_rng(5).bytes(16 * rows)
    ordinals = np.arange(rows) if ident.kind is segments.SegmentKind.roster else None
    segments.write_segment(Path(folder), ident, tokens, ordinals)
    """
)


@pytest.mark.slow  # a process of its own, killed: the end-to-end tier
def test_a_writer_killed_mid_write_leaves_nothing_trusted(world: World, tmp_path: Path) -> None:
    hub = world.broker.hub
    store = SegmentStore(tmp_path / "segments")
    ref = next(r for r in _refs(hub, store).values() if r.kind == "roster")
    ident = store.ident(ref)
    fields = {
        "snapshot_id": ident.snapshot_id,
        "kind": int(ident.kind),
        "rows": ident.rows,
        "upload": ident.upload,
    }
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            _KILLED_WRITER,
            str(store.directory),
            json.dumps(fields),
            str(ref.rows),
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "writing"
            os.kill(writer.pid, signal.SIGKILL)
        finally:
            writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    left = [p.name for p in store.directory.iterdir() if not p.name.endswith(".lock")]
    assert len(left) == 1, left
    assert left[0].startswith("."), left
    assert left[0].endswith(".tmp"), left
    assert not store.path(ref).exists()  # nothing under a segment's name
    with pytest.raises(SegmentInvalid):
        open_segment(store.path(ref), ident)

    assert _tokens(store, hub, ref) == _truth(hub, ref)  # built from the database
    with hub.session() as session:
        assert store.sweep(session) == 1  # the dead writer's temporary file
    assert [p.name for p in store.directory.iterdir() if not p.name.startswith(".")] == [ident.name]


def test_another_database_history_rebuilds_and_a_replaced_snapshot_is_swept(
    world: World, tmp_path: Path
) -> None:
    hub = world.broker.hub
    epoch = [Epoch(7, 1)]
    store = SegmentStore(tmp_path / "segments", lambda: epoch[0])
    refs = _refs(hub, store)
    for ref in refs.values():
        _tokens(store, hub, ref)
    before = {p.name for p in store.directory.iterdir() if not p.name.startswith(".")}
    assert all(name.startswith("7-1-") for name in before)

    epoch[0] = Epoch(7, 2)  # a failover or a restore: a new timeline
    store.restored()
    for ref in refs.values():
        assert _tokens(store, hub, ref) == _truth(hub, ref)
    assert store.built == 2 * len(refs)
    with hub.session() as session:
        assert store.sweep(session) == len(refs) + len(refs)  # old files and their locks
    assert all(
        name.startswith("7-2-")
        for name in (p.name for p in store.directory.iterdir() if not p.name.startswith("."))
    )

    # A replaced snapshot's segment goes; its successor's is built when asked for.
    loans = {r.id for r in refs.values() if r.kind == "flag" and r.rows == 10}
    world.push("rafidain", [LOAN], {i: [LOAN] for i in world.ids[50:55]})
    now = _refs(hub, store)
    gone = set(refs) - set(now)
    assert len(gone) == 1
    assert gone <= loans
    with hub.session() as session:
        assert store.sweep(session) == 2  # the replaced one's file and its lock
    (replaced,) = gone
    assert not store.path(refs[replaced]).exists()
    (new,) = set(now) - set(refs)
    assert len(_tokens(store, hub, now[new])) == 5


def _job_tokens(world: World) -> set[str]:
    with world.client("molsa") as client:
        opened = client.post("/v1/match-jobs", json={"purpose": PURPOSE, "flags": [LOAN]})
        assert opened.status_code == 201, opened.text
        job = _wait(client, opened.json()["id"])
        assert job["state"] == "succeeded", job
        return {
            line["token"] for line in _ndjson(client.get(f"/v1/match-jobs/{job['id']}/results"))
        }


def test_a_replaced_snapshot_is_never_served_from_its_segment(api: InProcessApi) -> None:
    world = _world(api)
    store: SegmentStore = api.app.state.segments
    borrowers = {world.toks[i] for i in world.ids[0:15]}
    assert _flags(_answered_from_view(world, world.ids[0:1])[world.ids[0]]) == {(LOAN, "bank")}
    assert _job_tokens(world) == borrowers
    old = _refs(api.hub, store)
    assert all(store.path(ref).exists() for ref in old.values())  # what the view and job read

    # Rafidain's borrowers ids[0:5] pay off their loans (Ashur still holds ids[5:15]).
    world.push("rafidain", [LOAN], {i: [LOAN] for i in world.ids[5:10]})
    after = _lookup(world, world.ids[0:12])  # the very next lookup, view caught up or not
    assert all(_flags(after[i]) == set() for i in world.ids[0:5])
    assert _job_tokens(world) == borrowers - {world.toks[i] for i in world.ids[0:5]}
    after = _answered_from_view(world, world.ids[0:12])
    assert all(_flags(after[i]) == set() for i in world.ids[0:5])
    assert all(_flags(after[i]) == {(LOAN, "bank")} for i in world.ids[5:12])
    (replaced,) = set(old) - set(_refs(api.hub, store))
    deadline = time.monotonic() + 20
    while store.path(old[replaced]).exists():  # swept after the view's next load
        assert time.monotonic() < deadline, "the replaced snapshot's segment stayed"
        time.sleep(0.05)


def test_a_folder_that_cannot_be_written_leaves_readers_on_the_databases_rows(
    world: World, tmp_path: Path
) -> None:
    hub = world.broker.hub
    blocked = tmp_path / "segments"
    blocked.write_bytes(b"")  # a file where the folder should be: no segment can be written
    store = SegmentStore(blocked)
    for ref in _refs(hub, store).values():
        assert _tokens(store, hub, ref) == _truth(hub, ref)
    assert (store.built, blocked.read_bytes()) == (0, b"")


def _in_place(path: Path, rows: int) -> None:
    """Zero a segment's tokens where they lie, as a ``cp`` over the file or ``rsync --inplace``
    would change them: same name, same size, same inode."""
    with path.open("r+b") as f:
        f.seek(fmt.HEADER_BYTES)
        f.write(bytes(16 * rows))


def test_a_segment_written_in_place_after_it_was_checked_is_let_go_and_checked_again(
    api: InProcessApi,
) -> None:
    """Before: the view and the engine kept serving the map they had verified, so the lookup
    answered "no indication" from the zeroed file and nothing was logged."""
    world = _world(api)
    store: SegmentStore = api.app.state.segments
    borrowers = {world.toks[i] for i in world.ids[0:15]}
    assert _flags(_answered_from_view(world, world.ids[0:1])[world.ids[0]]) == {(LOAN, "bank")}
    assert _job_tokens(world) == borrowers  # the engine maps the segments too
    flags = [r for r in _refs(api.hub, store).values() if r.kind == "flag"]
    rejected = store.rejected
    for ref in flags:
        _in_place(store.path(ref), ref.rows)
    api.app.state.lookup_views.check_soon()
    deadline = time.monotonic() + 20
    while store.rejected < rejected + len(flags):  # the view found each file untrustworthy
        assert time.monotonic() < deadline, "the view kept the changed segments"
        time.sleep(0.05)
    assert _flags(_answered_from_view(world, world.ids[0:1])[world.ids[0]]) == {(LOAN, "bank")}
    assert _job_tokens(world) == borrowers
    for ref in flags:  # rebuilt whole
        open_segment(store.path(ref), store.ident(ref))


def test_no_file_but_a_regular_one_is_read_as_a_segment_and_a_building_ones_lock_stays(
    world: World, tmp_path: Path
) -> None:
    """A FIFO or a link under a segment's name is rebuilt over, never waited on or followed;
    the sweep leaves the lock of a current snapshot whose first build is under way."""
    hub = world.broker.hub
    store = SegmentStore(tmp_path / "segments")
    refs = list(_refs(hub, store).values())
    store.directory.mkdir()
    elsewhere = tmp_path / "elsewhere.seg"
    first, second = refs[0], refs[1]
    _tokens(SegmentStore(tmp_path / "other"), hub, second)  # a whole, valid segment
    elsewhere.write_bytes((tmp_path / "other" / store.ident(second).name).read_bytes())
    os.mkfifo(store.path(first))
    store.path(second).symlink_to(elsewhere)
    for ref in (first, second):
        with pytest.raises(SegmentInvalid):
            open_segment(store.path(ref), store.ident(ref))
        assert _tokens(store, hub, ref) == _truth(hub, ref)
        assert not store.path(ref).is_symlink()
        assert store.path(ref).is_file()

    # A folder under a segment's name cannot be written over: that one snapshot's readers get
    # the database's rows, and the background build carries on with the others.
    blocked = refs[2]
    store.path(blocked).mkdir()
    (store.path(blocked) / "junk").write_bytes(b"x")
    assert _tokens(store, hub, blocked) == _truth(hub, blocked)
    fresh = SegmentStore(store.directory)
    with hub.session() as session:
        fresh.prepare(session)
    assert all(store.path(r).is_file() for r in refs if r is not blocked)

    third = refs[3]
    lock = store.directory / f".{store.ident(third).name}.lock"
    with store._building(store.ident(third).name):  # a first build under way, no segment yet
        with hub.session() as session:
            store.sweep(session)
        assert lock.exists()


def test_rows_read_through_the_autocommit_engine_hold_the_table_between_ranges(
    api: InProcessApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lookup view builds segments through the read-only engine, which autocommits each
    statement. Its page ranges must still be read in one transaction: otherwise a CLUSTER or
    VACUUM FULL between two ranges moves rows from one not yet read into one already read, and
    the count matches with the wrong rows (found in review)."""
    hub = api.hub
    url = hub.settings.database_url or ""
    if not url.startswith("postgresql"):
        pytest.skip("PostgreSQL reads rows by page range; SQLite in one select")
    _world(api)
    roster = next(r for r in _refs(hub, SegmentStore(tmp_path)).values() if r.kind == "roster")
    monkeypatch.setattr(SnapshotRows, "PIECE_PAGES", 1)
    rewrites: list[bool] = []
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    execute = psycopg.Cursor.execute

    me = threading.get_ident()  # the app's own background builds read through cursors too

    def after_first_range(self: psycopg.Cursor[Any], query: Any, *args: Any, **kw: Any) -> Any:
        if threading.get_ident() != me or "string_agg" not in str(query):
            pass
        elif not rewrites:
            rewrites.append(False)
        else:
            # What a rewrite needs between two ranges: the table to itself, at once.
            with psycopg.connect(libpq) as other:
                try:
                    other.execute("SET lock_timeout = '100ms'")
                    other.execute("LOCK TABLE roster_rows IN ACCESS EXCLUSIVE MODE")
                    rewrites.append(True)
                except psycopg.errors.LockNotAvailable:
                    rewrites.append(False)
        return execute(self, query, *args, **kw)

    monkeypatch.setattr(psycopg.Cursor, "execute", after_first_range)
    engine = make_engine(url, read_only=True)
    try:
        with Session(engine) as session:
            ordinals, stored = SnapshotRows(session).roster_tokens(roster.id)
    finally:
        engine.dispose()
    assert len(rewrites) >= 2, "the roster was not read in several ranges"
    assert not any(rewrites), "a rewrite could take the table between two ranges"
    assert len(ordinals) == roster.rows
    assert sorted(stored[i : i + 16] for i in range(0, len(stored), 16)) == _truth(hub, roster)
