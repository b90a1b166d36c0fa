"""Figure 8: snapshot segments (issue 18), on the hub figures 2-4 share, each beside its
baseline in the same run:

- building every current snapshot's segment from PostgreSQL (a fresh folder) against a raw
  binary COPY out of the same rows;
- a fresh ``matchhub serve``'s lookup view ready with the segments on disk, and with the folder
  wiped first (it builds them from PostgreSQL);
- memory with two HTTP processes and one worker that has run a match job: the sum of their
  proportional set sizes (PSS, /proc/PID/smaps_rollup), beside the segments' size on disk;
- that job, the worker's first (a fresh process, segments on disk), against the DuckDB
  in-memory join of the same tokens.
"""

from __future__ import annotations

import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.config import Context
from benchmarks.measure import MIB, Comparison, Figure
from benchmarks.queries import duckdb_join, run_job, wait_for_view, world
from matchhub.agency.connector.client import make_client
from matchhub.cli.processes import WorkerProcess
from matchhub.kit.epoch import Epoch
from matchhub.uploads.repository import SnapshotRepository
from matchhub.uploads.segments import SegmentStore


def pss_mib(pid: int) -> float:
    """The proportional set size of a live process: its private pages, and each shared page
    divided by the number of processes mapping it, so a sum over processes counts a file
    they all map once."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024 / MIB
    raise RuntimeError(f"no Pss for {pid}")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MIB
    raise RuntimeError(f"no VmRSS for {pid}")


def _epoch(libpq: str) -> Epoch:
    with psycopg.connect(libpq) as conn:
        row = conn.execute(
            "SELECT (SELECT system_identifier FROM pg_control_system()), "
            "substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"
        ).fetchone()
    assert row is not None
    return Epoch(int(row[0]), int(row[1], 16))


def _raw_copy(libpq: str, snapshots: list[tuple[int, str]]) -> float:
    """Seconds to COPY every snapshot's rows out in PostgreSQL's binary format, into memory."""
    started = time.perf_counter()
    with psycopg.connect(libpq) as conn, conn.cursor() as cursor:
        for snapshot_id, kind in snapshots:
            query = (
                "COPY (SELECT ordinal, token FROM roster_rows WHERE snapshot_id = %s) "
                "TO STDOUT (FORMAT BINARY)"
                if kind == "roster"
                else "COPY (SELECT token FROM snapshot_rows WHERE snapshot_id = %s) "
                "TO STDOUT (FORMAT BINARY)"
            )
            out = bytearray()
            with cursor.copy(query, (snapshot_id,)) as copy:
                for block in copy:
                    out += block
    return time.perf_counter() - started


def _build(ctx: Context, n: int, epoch: Epoch) -> float:
    """Seconds to build every current snapshot's segment into an empty folder."""
    scratch = ctx.root / f"segments-{n}"
    store = SegmentStore(scratch, lambda: epoch)
    hub = world(ctx).hub
    started = time.perf_counter()
    with hub.session() as session:
        store.prepare(session)
    seconds = time.perf_counter() - started
    shutil.rmtree(scratch, ignore_errors=True)
    return seconds


def _memory(ctx: Context, figure: Figure, n: int) -> dict[str, Any]:
    """Two HTTP processes and a fresh worker that runs one job: the job's time and the
    processes' memory."""
    w = world(ctx)
    hub = w.hub
    assert hub.settings is not None
    with ExitStack() as stack:
        http = [
            stack.enter_context(hub.broker({"MATCHHUB_SERVE_BACKGROUND": "false"}))
            for _ in range(2)
        ]
        for broker in http:
            wait_for_view(broker.url, w.monitor)
        worker = WorkerProcess(
            hub.settings.home,
            w.ministry,
            env={"MATCHHUB_DATABASE_URL": hub.url},
            log=ctx.root / f"worker-{n}.log",
        )
        stack.callback(worker.stop)
        worker.start(timeout=120)
        with make_client(http[0].url, w.ministry) as client:
            job = run_job(client, ctx.sizes.job_timeout)
        if (job.job.get("summary") or {}).get("flagged_beneficiaries") != ctx.bulk.flagged:
            raise RuntimeError("the worker's job flagged the wrong number")
        pids = [b.pid for b in http] + [worker.pid]
        figure.series["cold_job"].add(job.seconds)
        figure.series["pss"].add(sum(pss_mib(p) for p in pids))
        figure.series["rss"].add(sum(rss_mib(p) for p in pids))
        segments = hub.settings.paths.segments.glob("*.seg")
        figure.series["disk"].add(sum(p.stat().st_size for p in segments) / MIB)
        return {
            "pss_mib": [round(pss_mib(p), 1) for p in pids],
            "rss_mib": [round(rss_mib(p), 1) for p in pids],
            "cold_job_seconds": round(job.seconds, 3),
        }


def run(ctx: Context) -> Figure:
    w = world(ctx)
    hub = w.hub
    assert hub.settings is not None
    folder = hub.settings.paths.segments
    figure = Figure("segments", "Snapshot segments: build, restart, memory, cold job")
    figure.sizes = {
        "roster": len(ctx.bulk.roster),
        "partner_rows": ctx.bulk.partner_rows,
        "providers": len(ctx.bulk.providers),
    }
    figure.add_series(
        "build", "segments built from PostgreSQL (all snapshots)", "s", higher_is_better=False
    )
    figure.add_series("copy", "raw binary COPY out of the same rows", "s", higher_is_better=False)
    figure.add_series(
        "view_ready",
        "lookup view ready after a restart, segments on disk",
        "s",
        higher_is_better=False,
    )
    figure.add_series(
        "view_ready_wiped",
        "same, segments wiped first (built from PostgreSQL)",
        "s",
        higher_is_better=False,
    )
    figure.add_series(
        "cold_job", "match job in a fresh worker, segments on disk", "s", higher_is_better=False
    )
    figure.add_series(
        "join", "DuckDB in-memory join + aggregate, same tokens", "s", higher_is_better=False
    )
    figure.add_series("pss", "PSS sum: 2 HTTP processes + 1 worker", "MiB", higher_is_better=False)
    figure.add_series("rss", "  RSS sum of the same", "MiB", higher_is_better=False)
    figure.add_series("disk", "segments on disk", "MiB", higher_is_better=False)

    epoch = _epoch(hub.libpq)
    with hub.session() as session:
        current = [(int(r.id), r.kind) for r in SnapshotRepository(session).current_refs()]
    runs: list[dict[str, Any]] = []
    for n in range(ctx.repeat):
        order = ("copy", "build") if n % 2 == 0 else ("build", "copy")
        for what in order:
            if what == "copy":
                figure.series["copy"].add(_raw_copy(hub.libpq, current))
            else:
                figure.series["build"].add(_build(ctx, n, epoch))
        # A restart: with the segments the last broker left, then with none.
        for key, wipe in (("view_ready", False), ("view_ready_wiped", True)):
            if wipe:
                shutil.rmtree(folder, ignore_errors=True)
            with hub.broker() as broker:
                figure.series[key].add(wait_for_view(broker.url, w.monitor))
        runs.append(_memory(ctx, figure, n))
        last = {key: series.samples[-1] for key, series in figure.series.items() if series.samples}
        ctx.say(
            f"segments {n + 1}/{ctx.repeat}: build {last['build']:.2f} s, COPY "
            f"{last['copy']:.2f} s; view ready {last['view_ready']:.2f} s, wiped "
            f"{last['view_ready_wiped']:.2f} s; PSS sum {last['pss']:,.0f} MiB (RSS "
            f"{last['rss']:,.0f}); cold worker job {last['cold_job']:.2f} s"
        )
    times, flagged = duckdb_join(ctx.bulk, ctx.repeat)
    if flagged != ctx.bulk.flagged:
        raise RuntimeError(f"the DuckDB join found {flagged}, expected {ctx.bulk.flagged}")
    for seconds in times:
        figure.series["join"].add(seconds)
    figure.comparisons += [
        Comparison(
            "segment build: COPY time / build time", figure.ratio("copy", "build"), ">= 0.5", 0.5
        ),
        Comparison(
            "cold worker job / DuckDB join", figure.ratio("cold_job", "join"), "<= 2", 2.0, False
        ),
        Comparison("PSS sum / segments on disk", figure.ratio("pss", "disk")),
        Comparison("view ready: on disk / wiped", figure.ratio("view_ready", "view_ready_wiped")),
    ]
    figure.extra["runs"] = runs
    figure.notes.append(
        "Build: SegmentStore.prepare into an empty folder (COPY out, sort, checksum, fsync, "
        "rename) against the same COPYs into memory. View ready: a fresh matchhub serve, "
        "seconds from start until /readyz says current. Memory: two matchhub serve with "
        "MATCHHUB_SERVE_BACKGROUND=false and one matchhub worker, read after the worker's "
        "first job (its engine maps the segments; its cold time includes verifying them)."
    )
    return figure
