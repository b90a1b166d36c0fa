"""``python -m benchmarks``: generate the data once per size, run each figure with its baseline
several times, print medians and ranges, write JSON."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks import (
    connector,
    desk,
    hub,
    ingest,
    processes,
    queries,
    replication,
    segments,
    wholepath,
)
from benchmarks.config import MODES, Context
from benchmarks.hub import DEFAULT_ADMIN_URL, postgres_version
from benchmarks.measure import Figure, cpu_ticks, machine, source_version, steal_percent
from benchmarks.report import SCHEMA, render

FIGURES: dict[str, Callable[[Context], Figure]] = {
    "ingest": ingest.run,
    "bulk_match": queries.run_bulk,
    "lookups": queries.run_lookups,
    "processes": processes.run,
    "segments": segments.run,
    "replication": replication.run,
    "audit": queries.run_audit,
    "hashing": connector.run,
    "whole_path": wholepath.run,
    "desk_resolve": desk.run,
}
ALIASES = {
    "bulk": "bulk_match",
    "match": "bulk_match",
    "path": "whole_path",
    "psi": "whole_path",
    "desk": "desk_resolve",
}
DEFAULT_OUT = Path(__file__).parent / "out"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="matchhub's figures beside their baselines, measured in the same run.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--full", action="store_true", help="7M beneficiaries x 50M partner rows, 10M ingest"
    )
    size.add_argument("--tiny", action="store_true", help="a few thousand rows: the smoke test")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        choices=sorted([*FIGURES, *ALIASES]),
        help=f"run only this figure (repeatable): {', '.join(FIGURES)}",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each figure (default 3)")
    parser.add_argument("--rows", type=int, help="ingest rows (default 1M; 10M with --full)")
    parser.add_argument(
        "--psi-repeat",
        type=int,
        metavar="N",
        help="openmined-psi runs (default 1 quick, --repeat full; 0 skips the peer)",
    )
    parser.add_argument(
        "--json", type=Path, help="where to write the JSON (default benchmarks/out/<mode>.json)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("MATCHHUB_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="an admin URL: the run creates and drops its own databases there",
    )
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="sample each broker with py-spy into DIR"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def _terminate(_signal: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so brokers are stopped and databases dropped."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    mode = "full" if args.full else "tiny" if args.tiny else "quick"
    sizes = MODES[mode]
    if args.rows:
        sizes = replace(sizes, ingest_rows=args.rows)
    if args.psi_repeat is not None:
        sizes = replace(sizes, psi_repeat=max(0, args.psi_repeat))
    names = [ALIASES.get(n, n) for n in args.only] if args.only else list(FIGURES)
    names = [n for n in FIGURES if n in names]  # the canonical order, each once
    console = Console(stderr=True, log_path=False)
    out = args.json or DEFAULT_OUT / f"{mode}.json"
    started, ticks = time.time(), cpu_ticks()
    root = Path(tempfile.mkdtemp(prefix="matchhub-bench-"))
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "command": shlex.join(["python", "-m", "benchmarks", *(argv or sys.argv[1:])]),
        "mode": mode,
        "repeat": args.repeat,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(postgres_version(args.postgres_url)),
        "source": source_version(),
        "sizes": sizes.to_json(),
        "figures": {},
        "failed": [],
    }
    ctx = Context(sizes, args.repeat, args.postgres_url, root, console, args.profile)
    try:
        for name in names:
            console.rule(f"[bold]{name}")
            began = time.perf_counter()
            try:
                figure = FIGURES[name](ctx)
            except Exception as exc:  # one failed figure must not lose the others
                console.print_exception()
                figure = Figure(name, name, skipped=f"failed: {type(exc).__name__}: {exc}")
                figure.extra["traceback"] = traceback.format_exc()
                document["failed"].append(name)
            figure.seconds = time.perf_counter() - began
            document["figures"][name] = figure.to_json()
    finally:
        ctx.stack.close()
        shutil.rmtree(root, ignore_errors=True)
    document["seconds"] = round(time.time() - started, 1)
    document["cpu_steal_percent"] = steal_percent(ticks, cpu_ticks())
    # Each broker imports matchhub when it starts: a tree that changed mid-run mixes versions.
    document["source_at_end"] = source_version()
    document["databases"] = list(hub.CREATED)
    screen = Console()
    render(document, screen if screen.is_terminal else Console(width=132))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    console.print(f"JSON written to {out}")
    return 1 if document["failed"] else 0
