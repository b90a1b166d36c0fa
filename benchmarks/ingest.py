"""Figure 1: a provider's snapshot pushed over HTTPS + mutual TLS in the compact format, from
open to committed (rows visible, indexed), against a raw binary COPY of the same rows into a
fresh table of the same PostgreSQL plus the broker's two indexes built afterwards."""

from __future__ import annotations

import time

import numpy as np
import psycopg

from benchmarks.config import Context
from benchmarks.data import push_tokens, random_tokens
from benchmarks.hub import BenchHub
from benchmarks.measure import Comparison, CpuMeter, Figure
from matchhub.agency.connector.client import make_client
from matchhub.kit.pgcopy import Layout
from matchhub.protocol.kinds import AgencyKind

FLAG = "bank.large_loan"
_COPY_BLOCK = 8 * 2**20
_ROW = Layout(("snapshot_id", ">i4"), ("token", "V16"))


def pgcopy_payload(stored: np.ndarray, snapshot_id: int) -> bytes:
    """Binary COPY data for rows (snapshot_id int4, token bytea), as the broker writes it."""
    tokens = np.ascontiguousarray(stored).view("V16").ravel()
    return _ROW.encode({"snapshot_id": snapshot_id, "token": tokens}, len(tokens))


def raw_copy_and_index(libpq: str, payload: bytes, *, indexes: bool = True) -> tuple[float, float]:
    """(COPY seconds, COPY + both indexes seconds) into a fresh table, then dropped; with
    ``indexes`` off, the COPY alone (both figures the same)."""
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw_rows")
        conn.execute(
            "CREATE TABLE bench_raw_rows (snapshot_id integer NOT NULL, token bytea NOT NULL)"
        )
        conn.execute("CHECKPOINT")
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY bench_raw_rows (snapshot_id, token) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            view = memoryview(payload)
            for offset in range(0, len(payload), _COPY_BLOCK):
                copy.write(view[offset : offset + _COPY_BLOCK])
        copied = time.perf_counter()
        if indexes:  # the broker's indexes on snapshot_rows (src/matchhub/uploads/models.py)
            conn.execute("CREATE INDEX ON bench_raw_rows (token, snapshot_id)")
            conn.execute("CREATE INDEX ON bench_raw_rows USING brin (snapshot_id)")
        indexed = time.perf_counter()
        conn.execute("DROP TABLE bench_raw_rows")
    return copied - started, indexed - started


def visible_rows(libpq: str, upload_id: str) -> int:
    with psycopg.connect(libpq) as conn:
        row = conn.execute(
            "SELECT count(*) FROM snapshot_rows r JOIN snapshots s ON s.id = r.snapshot_id "
            "WHERE s.upload_id = %s AND s.state = 'current'",
            (upload_id,),
        ).fetchone()
    return int(row[0]) if row else 0


def run(ctx: Context) -> Figure:
    s = ctx.sizes
    rows = s.ingest_rows
    figure = Figure("ingest", "Ingest: push over HTTPS+mTLS, committed and indexed")
    figure.sizes = {"rows": rows, "chunk_rows": s.chunk_rows, "format": "compact", "flags": 1}
    matchhub = figure.add_series("matchhub", "matchhub push → commit (rows visible)", "rows/s")
    baseline = figure.add_series(
        "baseline", "raw binary COPY + CREATE INDEX (btree, BRIN)", "rows/s"
    )
    copy_only = figure.add_series("copy_only", "  raw binary COPY alone, no index", "rows/s")
    tokens = random_tokens(np.random.default_rng(3), rows)
    # The broker stores 16-byte re-keyed tokens; the baseline copies 16 bytes of each token.
    payload = pgcopy_payload(tokens[:, :16], 1)
    cpu: list[dict[str, float]] = []
    with BenchHub("ingest", ctx.root, ctx.admin_url, ctx.profile_dir) as hub:
        bank = hub.agency("rafidain", AgencyKind.bank)
        version = hub.matching_key_version()
        with hub.broker() as broker, make_client(broker.url, bank) as client:
            for n in range(ctx.repeat):
                hub.wait_for_purge()  # the previous snapshot's rows gone, VACUUM, CHECKPOINT
                meter = CpuMeter(broker.pid)
                result = push_tokens(
                    client,
                    key_version=version,
                    tokens=tokens,
                    flags=[FLAG],
                    chunk_rows=s.chunk_rows,
                )
                cpu.append(meter.stop(result.seconds).to_json())
                seen = visible_rows(hub.libpq, result.upload["id"])
                if seen != rows:
                    raise RuntimeError(f"{seen} rows visible after the commit, expected {rows}")
                matchhub.add(rows / result.seconds)
                copy_seconds, total_seconds = raw_copy_and_index(hub.libpq, payload)
                baseline.add(rows / total_seconds)
                copy_only.add(rows / copy_seconds)
                ctx.say(
                    f"ingest {n + 1}/{ctx.repeat}: matchhub {rows / result.seconds:,.0f} rows/s, "
                    f"COPY + index {rows / total_seconds:,.0f} rows/s"
                )
        figure.broker_peak_rss_mib = hub.peaks
    figure.comparisons.append(
        Comparison(
            "matchhub / (raw COPY + index)",
            figure.ratio("matchhub", "baseline"),
            ">= 0.5",
            0.5,
        )
    )
    figure.extra["cpu_during_push"] = cpu
    figure.notes.append(
        "Each measured push replaces the provider's previous snapshot (the monthly refresh); "
        "the broker's purge of the replaced rows is awaited and the table vacuumed before the "
        "next one. The baseline builds its indexes after the COPY, the best case for PostgreSQL."
    )
    return figure
