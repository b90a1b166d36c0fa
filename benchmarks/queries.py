"""Figures 2-4, on one hub holding the ministry's roster and six providers' snapshots:

2. bulk match, submit → summary ready, cold (a fresh broker, its snapshots' segments on disk)
   and warm, against an in-memory DuckDB join;
3. lookups at many concurrent mTLS clients against a trivial endpoint of the same server;
4. audited requests against the same requests with the audit log switched off.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import httpx
import numpy as np
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.config import Context
from benchmarks.data import PROVIDERS, PURPOSE, BulkData, lookup_bodies, push_tokens
from benchmarks.hub import BenchHub
from benchmarks.load import LoadResult, Request, run_load
from benchmarks.measure import Comparison, Figure, Series
from matchhub.agency.connector.client import AgencyCredentials, make_client
from matchhub.protocol.kinds import AgencyKind

# --- the hub the three figures share ---------------------------------------------------------


@dataclass
class World:
    hub: BenchHub
    version: str
    ministry: AgencyCredentials
    monitor: AgencyCredentials
    setup: dict[str, Any] = field(default_factory=dict)


def world(ctx: Context) -> World:
    """Made once per run: the roster and every provider's snapshot pushed over mTLS."""
    found = ctx.shared.get("world")
    if isinstance(found, World):
        return found
    data = ctx.bulk
    hub = ctx.stack.enter_context(BenchHub("queries", ctx.root, ctx.admin_url, ctx.profile_dir))
    ministry = hub.agency("molsa", AgencyKind.welfare)
    providers = [hub.agency(code, AgencyKind(kind)) for code, kind, _ in PROVIDERS]
    version = hub.matching_key_version()
    setup: dict[str, Any] = {"pushes": []}
    ctx.say(f"pushing the roster and {data.partner_rows:,} partner rows over mTLS")
    with hub.broker() as broker:
        uploads = [(ministry, data.roster, "")] + [
            (creds, tokens, flag)
            for creds, tokens, (_, _, flag) in zip(
                providers, data.providers, PROVIDERS, strict=True
            )
        ]
        for creds, tokens, flag in uploads:
            with make_client(broker.url, creds) as client:
                result = push_tokens(
                    client,
                    key_version=version,
                    tokens=tokens,
                    flags=[flag] if flag else [],
                    chunk_rows=ctx.sizes.chunk_rows,
                )
            setup["pushes"].append(
                {
                    "what": flag or "roster",
                    "rows": len(tokens),
                    "seconds": round(result.seconds, 3),
                    "rows_per_second": round(len(tokens) / result.seconds),
                }
            )
    setup["broker_peak_rss_mib"] = broker.peak_mib
    found = World(hub, version, ministry, hub.agency("prometheus", AgencyKind.monitor), setup)
    ctx.shared["world"] = found
    return found


# --- figure 2: bulk match --------------------------------------------------------------------


@dataclass
class JobRun:
    seconds: float  # submit → summary ready, as the client sees it
    job: dict[str, Any]

    @property
    def broker_seconds(self) -> float:
        """Created → finished, by the broker's own clock (no polling granularity)."""
        created = datetime.fromisoformat(self.job["created_at"])
        finished = datetime.fromisoformat(self.job["finished_at"])
        return (finished - created).total_seconds()


def run_job(client: httpx.Client, timeout: float, poll: float = 0.02) -> JobRun:
    """Submit a match job for the whole roster and poll until its summary is ready."""
    started = time.perf_counter()
    response = client.post("/v1/match-jobs", json={"purpose": PURPOSE})
    if response.status_code != 201:
        raise RuntimeError(f"submit: {response.status_code} {response.text}")
    job_id = response.json()["id"]
    deadline = started + timeout
    while time.perf_counter() < deadline:
        job: dict[str, Any] = client.get(f"/v1/match-jobs/{job_id}").json()
        if job.get("state") == "succeeded":
            return JobRun(time.perf_counter() - started, job)
        if job.get("state") == "failed":
            raise RuntimeError(f"the match job failed: {job.get('reason')}")
        time.sleep(poll)
    raise TimeoutError(f"the match job did not finish in {timeout} s")


def _uhugeint_columns(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    words = np.ascontiguousarray(tokens[:, :16]).view(">u8").astype(np.uint64)
    return np.ascontiguousarray(words[:, 0]), np.ascontiguousarray(words[:, 1])


def duckdb_join(data: BulkData, repeat: int) -> tuple[list[float], int]:
    """The engine limit: the same 16-byte tokens loaded into an in-memory DuckDB first
    (untimed), then only the join and the per-beneficiary aggregate timed."""
    db = duckdb.connect(":memory:")
    try:
        hi, lo = _uhugeint_columns(data.roster)
        db.register("batch", {"o": np.arange(len(hi), dtype=np.int32), "hi": hi, "lo": lo})
        db.execute(
            "CREATE TABLE roster AS "
            "SELECT o AS ordinal, (hi::UHUGEINT << 64) | lo::UHUGEINT AS k FROM batch"
        )
        db.unregister("batch")
        db.execute("CREATE TABLE provider (src INTEGER, k UHUGEINT)")
        for index, tokens in enumerate(data.providers):
            hi, lo = _uhugeint_columns(tokens)
            db.register("batch", {"hi": hi, "lo": lo})
            db.execute(
                "INSERT INTO provider SELECT ?, (hi::UHUGEINT << 64) | lo::UHUGEINT FROM batch",
                [index],
            )
            db.unregister("batch")
        times: list[float] = []
        flagged = 0
        for _ in range(repeat):
            started = time.perf_counter()
            db.execute(
                """
                CREATE OR REPLACE TEMP TABLE result AS
                SELECT r.ordinal, list(DISTINCT p.src ORDER BY p.src) AS sources
                FROM roster r JOIN provider p ON p.k = r.k
                GROUP BY r.ordinal
                """
            )
            row = db.execute("SELECT count(*) FROM result").fetchone()
            times.append(time.perf_counter() - started)
            flagged = int(row[0]) if row else 0
        return times, flagged
    finally:
        db.close()


def run_bulk(ctx: Context) -> Figure:
    w = world(ctx)
    data = ctx.bulk
    figure = Figure("bulk_match", "Bulk match: submit → summary ready, whole roster")
    figure.sizes = {
        "roster": len(data.roster),
        "partner_rows": data.partner_rows,
        "providers": len(data.providers),
        "flagged_beneficiaries": data.flagged,
    }
    warm = figure.add_series(
        "matchhub", "matchhub job, warm (snapshots in its engine)", "s", higher_is_better=False
    )
    cold = figure.add_series(
        "cold",
        "matchhub job, cold (a fresh broker's first; its view has mapped the segments)",
        "s",
        higher_is_better=False,
    )
    baseline = figure.add_series(
        "baseline", "DuckDB in-memory join + aggregate, same tokens", "s", higher_is_better=False
    )
    jobs: list[dict[str, Any]] = []
    for n in range(ctx.repeat):
        with w.hub.broker() as broker, make_client(broker.url, w.ministry) as client:
            # A broker that has finished starting: its lookup view loads the same snapshots,
            # and would otherwise compete with the cold job's own load for the two cores.
            wait_for_view(broker.url, w.monitor)
            for series, label in ((cold, "cold"), (warm, "warm")):
                job = run_job(client, ctx.sizes.job_timeout)
                summary = job.job.get("summary") or {}
                if summary.get("flagged_beneficiaries") != data.flagged:
                    raise RuntimeError(f"job flagged {summary.get('flagged_beneficiaries')}")
                series.add(job.seconds)
                jobs.append(
                    {
                        "run": label,
                        "client_seconds": round(job.seconds, 3),
                        "broker_seconds": round(job.broker_seconds, 3),
                        "runner_seconds": summary.get("seconds"),
                    }
                )
        figure.broker_peak_rss_mib.append(broker.peak_mib or 0.0)
        ctx.say(
            f"bulk match {n + 1}/{ctx.repeat}: cold {cold.samples[-1]:.2f} s, "
            f"warm {warm.samples[-1]:.2f} s"
        )
    times, flagged = duckdb_join(data, ctx.repeat)
    if flagged != data.flagged:
        raise RuntimeError(f"the DuckDB join found {flagged}, expected {data.flagged}")
    for seconds in times:
        baseline.add(seconds)
    figure.comparisons += [
        Comparison(
            # Issue 18's target (issue 14's was <= 2).
            "warm job / DuckDB join",
            figure.ratio("matchhub", "baseline"),
            "<= 1.5",
            1.5,
            False,
        ),
        Comparison("cold job / DuckDB join", figure.ratio("cold", "baseline")),
    ]
    figure.extra.update(jobs=jobs, setup=w.setup)
    figure.notes.append(
        "Job times are seen by the client, polling every 0.02 s, from a broker whose lookup "
        "view is current (it loads the same snapshots at start); broker_seconds in extra.jobs "
        "is created → finished by the broker's clock, runner_seconds the runner's own time."
    )
    return figure


# --- figures 3 and 4: concurrent requests ----------------------------------------------------


def wait_for_view(url: str, monitor: AgencyCredentials, timeout: float = 900.0) -> float:
    """Wait until the broker answers lookups from its in-memory view (``/metrics``, read with
    the monitor's certificate), as a broker that has finished starting does; returns the
    seconds waited."""
    started = time.perf_counter()
    with make_client(url, monitor) as client:
        while True:
            state = _view_state(client.get("/metrics").text)
            if state in ("current", "off", "too_large"):
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"the lookup view is still {state}")
            time.sleep(0.05)


def _view_state(exposition: str) -> str | None:
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "matchhub_lookup_view_state" and sample.value == 1:
                return sample.labels["state"]
    return None


def _record(series: dict[str, Series], prefix: str, result: LoadResult) -> None:
    series[prefix].add(result.rate)
    series[f"{prefix}_p50"].add(result.p50_ms)
    series[f"{prefix}_p99"].add(result.p99_ms)


def _add_request_series(figure: Figure, key: str, label: str) -> None:
    figure.add_series(key, label, "req/s")
    figure.add_series(f"{key}_p50", f"  {label}: p50", "ms", higher_is_better=False)
    figure.add_series(f"{key}_p99", f"  {label}: p99", "ms", higher_is_better=False)


def run_lookups(ctx: Context) -> Figure:
    w = world(ctx)
    s = ctx.sizes
    bodies = tuple(body for body, _ in lookup_bodies(ctx.bulk, s.lookup_tokens, 2000))
    figure = Figure("lookups", f"Lookups at {s.clients} concurrent mTLS clients")
    figure.sizes = {
        "clients": s.clients,
        "tokens_per_lookup": s.lookup_tokens,
        "seconds_per_window": s.lookup_seconds,
        "roster": len(ctx.bulk.roster),
        "partner_rows": ctx.bulk.partner_rows,
    }
    _add_request_series(figure, "matchhub", f"POST /v1/lookups ({s.lookup_tokens} tokens)")
    _add_request_series(figure, "baseline", "GET /healthz (trivial, unaudited)")
    lookups = Request("POST", "/v1/lookups", bodies)
    trivial = Request.get("/healthz")
    runs: list[dict[str, Any]] = []
    with w.hub.broker() as broker:
        figure.extra["view_load_seconds"] = round(wait_for_view(broker.url, w.monitor), 2)
        for request in (trivial, lookups):  # warm-up, not counted
            run_load(broker.url, w.ministry, request, clients=s.clients, seconds=1.0)
        for n in range(ctx.repeat):
            order = [("baseline", trivial), ("matchhub", lookups)]
            for key, request in order if n % 2 == 0 else order[::-1]:
                result = run_load(
                    broker.url,
                    w.ministry,
                    request,
                    clients=s.clients,
                    seconds=s.lookup_seconds,
                    broker_pid=broker.pid,
                )
                _record(figure.series, key, result)
                runs.append({"what": key, **result.to_json()})
            ctx.say(
                f"lookups {n + 1}/{ctx.repeat}: {figure.series['matchhub'].samples[-1]:,.0f} "
                f"req/s, /healthz {figure.series['baseline'].samples[-1]:,.0f} req/s"
            )
    figure.broker_peak_rss_mib.append(broker.peak_mib or 0.0)
    figure.comparisons.append(
        # Issue 18's target, so that it holds with this machine's noise (issue 14's was 0.5).
        Comparison("lookups / trivial (req/s)", figure.ratio("matchhub", "baseline"), ">= 0.6", 0.6)
    )
    figure.extra["runs"] = runs
    figure.notes.append(
        "Lookup bodies are pre-encoded (about one token in five is off the roster). The lookup "
        "rate limit is lifted for the benchmark: it is a policy, not a capacity. The client "
        "runs in this process on the same 2 cores; extra.runs shows where the CPU went. Load "
        "starts once the broker's lookup view is current (extra.view_load_seconds after "
        "start); until then it answers lookups from SQL."
    )
    return figure


def _audit_entries(hub: BenchHub) -> int:
    with psycopg.connect(hub.libpq) as conn:
        row = conn.execute("SELECT count(*) FROM audit_entries").fetchone()
    return int(row[0]) if row else 0


def run_audit(ctx: Context) -> Figure:
    w = world(ctx)
    s = ctx.sizes
    bodies = tuple(body for body, _ in lookup_bodies(ctx.bulk, s.lookup_tokens, 2000, seed=17))
    figure = Figure("audit", "Audit log on vs off (PostgreSQL)")
    figure.sizes = {
        "clients": s.clients,
        "tokens_per_lookup": s.lookup_tokens,
        "seconds_per_window": s.audit_seconds,
    }
    requests = {
        "whoami": Request.get("/v1/whoami"),
        "lookups": Request("POST", "/v1/lookups", bodies),
    }
    for name, label in (("whoami", "GET /v1/whoami"), ("lookups", "POST /v1/lookups")):
        for mode in ("on", "off"):
            _add_request_series(figure, f"{name}_{mode}", f"{label}, audit {mode}")
    entries: dict[str, int] = {"on": 0, "off": 0}
    runs: list[dict[str, Any]] = []
    for n in range(ctx.repeat):
        modes = ("on", "off") if n % 2 == 0 else ("off", "on")
        for mode in modes:
            env = {"MATCHHUB_AUDIT_ENABLED": "true" if mode == "on" else "false"}
            before = _audit_entries(w.hub)
            with w.hub.broker(env) as broker:
                wait_for_view(broker.url, w.monitor)
                for request in requests.values():  # warm-up, not counted
                    run_load(broker.url, w.ministry, request, clients=s.clients, seconds=1.0)
                for name, request in requests.items():
                    result = run_load(
                        broker.url,
                        w.ministry,
                        request,
                        clients=s.clients,
                        seconds=s.audit_seconds,
                        broker_pid=broker.pid,
                    )
                    _record(figure.series, f"{name}_{mode}", result)
                    runs.append({"what": f"{name}_{mode}", **result.to_json()})
            figure.broker_peak_rss_mib.append(broker.peak_mib or 0.0)
            entries[mode] += _audit_entries(w.hub) - before
        ctx.say(
            f"audit {n + 1}/{ctx.repeat}: whoami on "
            f"{figure.series['whoami_on'].samples[-1]:,.0f} / off "
            f"{figure.series['whoami_off'].samples[-1]:,.0f} req/s"
        )
    figure.comparisons += [
        Comparison("whoami: audit on / off (req/s)", figure.ratio("whoami_on", "whoami_off")),
        Comparison("lookups: audit on / off (req/s)", figure.ratio("lookups_on", "lookups_off")),
    ]
    figure.extra.update(audit_entries_written=entries, runs=runs)
    figure.notes.append(
        "Off is MATCHHUB_AUDIT_ENABLED=false on the same database (development only; refused "
        "in production). extra.audit_entries_written shows the log grew only when on."
    )
    return figure
