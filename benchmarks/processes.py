"""Figure 7: lookups per second with one and with two ``matchhub serve`` processes on this
machine, each beside the trivial endpoint with the same number of processes, in the same run.

The clients spread evenly over the processes (as nginx's round robin does); the load generator
is this process, on the same cores as the brokers and PostgreSQL, which the notes account for.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from benchmarks.config import Context
from benchmarks.data import lookup_bodies
from benchmarks.load import Request, run_load
from benchmarks.measure import Comparison, Figure
from benchmarks.queries import _add_request_series, _record, wait_for_view, world

PROCESS_COUNTS = (1, 2)


def run(ctx: Context) -> Figure:
    w = world(ctx)
    s = ctx.sizes
    bodies = tuple(body for body, _ in lookup_bodies(ctx.bulk, s.lookup_tokens, 2000, seed=29))
    figure = Figure("processes", "Lookups with one and two broker processes")
    figure.sizes = {
        "clients": s.clients,
        "tokens_per_lookup": s.lookup_tokens,
        "seconds_per_window": s.lookup_seconds,
        "roster": len(ctx.bulk.roster),
        "partner_rows": ctx.bulk.partner_rows,
        "processes": list(PROCESS_COUNTS),
    }
    lookups = Request("POST", "/v1/lookups", bodies)
    trivial = Request.get("/healthz")
    for n in PROCESS_COUNTS:
        _add_request_series(figure, f"lookups_{n}", f"POST /v1/lookups, {n} process(es)")
        _add_request_series(figure, f"trivial_{n}", f"GET /healthz, {n} process(es)")
    runs: list[dict[str, Any]] = []
    for n in PROCESS_COUNTS:
        with ExitStack() as stack:
            brokers = [stack.enter_context(w.hub.broker()) for _ in range(n)]
            urls = [b.url for b in brokers]
            pids = [b.pid for b in brokers]
            for url in urls:
                wait_for_view(url, w.monitor)
            for request in (trivial, lookups):  # warm-up, not counted
                run_load(urls, w.ministry, request, clients=s.clients, seconds=1.0)
            for r in range(ctx.repeat):
                order = [(f"trivial_{n}", trivial), (f"lookups_{n}", lookups)]
                for key, request in order if r % 2 == 0 else order[::-1]:
                    result = run_load(
                        urls,
                        w.ministry,
                        request,
                        clients=s.clients,
                        seconds=s.lookup_seconds,
                        broker_pid=pids,
                    )
                    _record(figure.series, key, result)
                    runs.append({"what": key, "processes": n, **result.to_json()})
                ctx.say(
                    f"{n} process(es) {r + 1}/{ctx.repeat}: lookups "
                    f"{figure.series[f'lookups_{n}'].samples[-1]:,.0f} req/s, /healthz "
                    f"{figure.series[f'trivial_{n}'].samples[-1]:,.0f} req/s"
                )
        figure.broker_peak_rss_mib += [b.peak_mib or 0.0 for b in brokers]
    figure.comparisons += [
        Comparison("lookups: 2 processes / 1", figure.ratio("lookups_2", "lookups_1")),
        Comparison("/healthz: 2 processes / 1", figure.ratio("trivial_2", "trivial_1")),
        Comparison("lookups / trivial, 1 process", figure.ratio("lookups_1", "trivial_1")),
        Comparison("lookups / trivial, 2 processes", figure.ratio("lookups_2", "trivial_2")),
    ]
    figure.extra["runs"] = runs
    figure.notes.append(
        "Both processes share one PostgreSQL and divide the (lifted) lookup rate between them "
        "through their heartbeat rows. The client is one asyncio process on the same 2 cores "
        "as the brokers and PostgreSQL: extra.runs shows where the CPU went (client, brokers "
        "summed, PostgreSQL), which is what bounds a second process here."
    )
    return figure
