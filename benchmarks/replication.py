"""Figure 8: what synchronous replication costs the broker.

A throwaway primary with a streaming replica (the drills' clusters, tests/clusters.py, on ports
of their own), one ``matchhub serve`` on the primary, and the same work with the primary
acknowledging commits alone (``synchronous_standby_names = ''``) and only once the replica has
them (``'replica'``, with ``synchronous_commit = on``), alternated within the run: audited
requests (each answer waits for its audit entry's commit) and an upload (its chunks and commit).
Both clusters share this machine's disk and talk over loopback: a second database host adds its
network round trip to every commit, which this figure does not show.
"""

from __future__ import annotations

import secrets
import time
from contextlib import ExitStack
from typing import Any

from tests.clusters import Clusters

from benchmarks.config import Context
from benchmarks.load import Request, run_load
from benchmarks.measure import Comparison, Figure
from matchhub.agency.connector.client import AgencyCredentials, make_client
from matchhub.agency.connector.push import push
from matchhub.cli import bootstrap
from matchhub.cli.processes import BrokerProcess
from matchhub.identity import service as identity
from matchhub.keystore import service as keystore
from matchhub.kit.db import make_engine, make_sessionmaker, session_scope
from matchhub.kit.settings import Settings
from matchhub.protocol.kinds import AgencyKind

MODES = {"async": "", "sync": "replica"}
LOAN = "bank.large_loan"


def run(ctx: Context) -> Figure:
    s = ctx.sizes
    rows = min(s.ingest_rows, 200_000)
    figure = Figure("replication", "Synchronous replication: what the broker pays")
    figure.sizes = {"clients": s.clients, "seconds_per_window": s.audit_seconds, "push_rows": rows}
    for mode in MODES:
        figure.add_series(f"whoami_{mode}", f"audited GET /v1/whoami, {mode}", "req/s")
        figure.add_series(f"push_{mode}", f"push of {rows:,} rows, {mode}", "rows/s")
    runs: list[dict[str, Any]] = []
    with ExitStack() as stack:
        clusters = stack.enter_context(Clusters())
        primary = clusters.new("primary", wal_level="replica", synchronous_commit="on").start()
        clusters.adopt(primary.replica("replica", "replica", synchronous_standby_names=""))
        primary.query("CREATE DATABASE matchhub")
        url = f"postgresql+psycopg://postgres@/matchhub?host=127.0.0.1:{primary.port}"
        settings = Settings(home=ctx.root / "replication" / "state", database_url=url)
        bootstrap.initialise(settings)
        bank, molsa, version = _agencies(settings, ctx)
        payload = [(secrets.token_hex(32), [LOAN]) for _ in range(rows)]
        broker = BrokerProcess(
            settings.home, molsa, env={"MATCHHUB_DATABASE_URL": url}, log=settings.home / "b.log"
        )
        stack.callback(broker.stop)
        broker.start(timeout=60)
        whoami = Request.get("/v1/whoami")
        run_load(broker.url, molsa, whoami, clients=s.clients, seconds=1.0)  # warm-up
        for n in range(ctx.repeat):
            for mode in MODES if n % 2 == 0 else list(MODES)[::-1]:
                primary.query(f"ALTER SYSTEM SET synchronous_standby_names = '{MODES[mode]}'")
                primary.query("SELECT pg_reload_conf()")
                time.sleep(0.5)
                result = run_load(
                    broker.url, molsa, whoami, clients=s.clients, seconds=s.audit_seconds
                )
                figure.series[f"whoami_{mode}"].add(result.rate)
                started = time.perf_counter()
                with make_client(broker.url, bank) as client:
                    push(client, kind="flags", key_version=version, flags=[LOAN], rows=payload)
                seconds = time.perf_counter() - started
                figure.series[f"push_{mode}"].add(rows / seconds)
                runs.append({"mode": mode, **result.to_json(), "push_seconds": round(seconds, 3)})
            ctx.say(
                f"replication {n + 1}/{ctx.repeat}: whoami async "
                f"{figure.series['whoami_async'].samples[-1]:,.0f} / sync "
                f"{figure.series['whoami_sync'].samples[-1]:,.0f} req/s"
            )
    figure.comparisons += [
        Comparison("audited whoami: sync / async", figure.ratio("whoami_sync", "whoami_async")),
        Comparison("push: sync / async", figure.ratio("push_sync", "push_async")),
    ]
    figure.extra["runs"] = runs
    figure.notes.append(
        "Primary and replica on this machine's one disk, over loopback: the figure is the "
        "replica's flush and the commit's wait for it, not a network round trip."
    )
    return figure


def _agencies(settings: Settings, ctx: Context) -> tuple[AgencyCredentials, AgencyCredentials, str]:
    engine = make_engine(settings.sqlalchemy_url)
    ca = keystore.load_ca(settings.paths)
    made: list[AgencyCredentials] = []
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            for code, kind in (("rafidain", AgencyKind.bank), ("molsa", AgencyKind.welfare)):
                issued = identity.register_agency(
                    session, ca, settings.hub_name, code=code, kind=kind, name=f"BENCHMARK {code}"
                )
                folder = ctx.root / "replication" / "agencies" / code
                folder.mkdir(parents=True, exist_ok=True)
                ca_pem = settings.paths.ca_cert.read_bytes()
                bootstrap.write_agency_files(folder, code, issued, ca_pem)
                made.append(AgencyCredentials.in_folder(folder, code))
            version = keystore.register_matching_key_version(session)
    finally:
        engine.dispose()
    return made[0], made[1], version
