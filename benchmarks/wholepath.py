"""Figure 6: the whole path on the same identifiers. matchhub: a provider hashes its IDs and
pushes them, the ministry hashes and pushes its roster, runs a match job and downloads the
result; each repeat on a fresh hub. As the connector does, each chunk is hashed while the one
before it is sent (agency/connector/push.py), so a push stage includes its hashing.
openmined-psi (ECDH-PSI, the ``bench`` extra): the ministry as client learns the intersection
with the provider as server, both in this process (no network, which favours it).

Beside it, the path's own floor in the same run: hashing the same IDs (the connector's own
hashing, timed alone just before the path) plus a raw binary COPY of the same rows, as 16-byte
stored tokens, into a fresh table of the same PostgreSQL, no index. What matchhub adds above
that floor is the push protocol, re-keying, the indexes, the snapshot's segment, the match and
the results."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from benchmarks.config import Context
from benchmarks.data import PathData, compact_body, push_chunks
from benchmarks.hub import BenchHub
from benchmarks.ingest import pgcopy_payload, raw_copy_and_index
from benchmarks.measure import Comparison, CpuMeter, CpuSplit, Figure
from benchmarks.queries import run_job
from matchhub.agency.connector.client import make_client
from matchhub.agency.connector.push import Chunk
from matchhub.protocol.kinds import AgencyKind
from matchhub.protocol.tokens import MatchingKey, Tokeniser

FLAG = "bank.large_loan"
STAGES = ("push_partner", "push_roster", "match", "results")
HASHING = ("hash_partner", "hash_roster")  # alone, for the floor


def hash_ids(tokeniser: Tokeniser, ids: list[str]) -> np.ndarray:
    digest = b"".join(map(tokeniser.token_bytes, ids))
    return np.frombuffer(digest, dtype=np.uint8).reshape(len(ids), 32)


def id_chunks(
    tokeniser: Tokeniser, ids: list[str], flagged: bool, chunk_rows: int
) -> Iterator[Chunk]:
    """Compact chunks of the IDs' tokens, each hashed when it is asked for."""
    for seq, start in enumerate(range(0, len(ids), chunk_rows)):
        part = hash_ids(tokeniser, ids[start : start + chunk_rows])
        yield Chunk(seq, compact_body(part, flagged), len(part))


def matchhub_once(
    ctx: Context, data: PathData, label: str
) -> tuple[dict[str, float], dict[str, CpuSplit], float, float]:
    """Stage seconds of one whole path on a fresh hub, the CPU each stage took (this process,
    the broker, every PostgreSQL process of the machine), the broker's peak RSS (MiB), and
    the seconds of a raw binary COPY of the same rows into the hub's PostgreSQL (the floor)."""
    s = ctx.sizes
    times: dict[str, float] = {}
    cpu: dict[str, CpuSplit] = {}
    with BenchHub(label, ctx.root, ctx.admin_url, ctx.profile_dir) as hub:
        bank = hub.agency("rafidain", AgencyKind.bank)
        ministry = hub.agency("molsa", AgencyKind.welfare)
        key = MatchingKey.generate(hub.matching_key_version())
        with hub.broker() as broker:
            tokeniser = Tokeniser(key, "iq.ncn")
            meter = CpuMeter(broker.pid)
            mark = time.perf_counter()

            def lap(stage: str) -> None:
                nonlocal mark
                now = time.perf_counter()
                times[stage], mark = now - mark, now
                cpu[stage] = meter.lap(times[stage])

            partner = hash_ids(tokeniser, data.partner_ids)
            lap("hash_partner")
            roster = hash_ids(tokeniser, data.roster_ids)
            lap("hash_roster")
            with make_client(broker.url, bank) as client:
                push_chunks(
                    client,
                    key_version=key.version,
                    rows=len(data.partner_ids),
                    flags=[FLAG],
                    chunks=lambda: id_chunks(tokeniser, data.partner_ids, True, s.chunk_rows),
                )
            lap("push_partner")
            with make_client(broker.url, ministry) as client:
                push_chunks(
                    client,
                    key_version=key.version,
                    rows=len(data.roster_ids),
                    flags=[],
                    chunks=lambda: id_chunks(tokeniser, data.roster_ids, False, s.chunk_rows),
                )
                lap("push_roster")
                job = run_job(client, s.job_timeout, poll=0.05)
                lap("match")
                lines = 0
                with client.stream("GET", f"/v1/match-jobs/{job.job['id']}/results") as response:
                    response.raise_for_status()
                    for line in response.iter_lines():
                        lines += bool(line)
                lap("results")
        flagged = (job.job.get("summary") or {}).get("flagged_beneficiaries")
        if flagged != data.expected or lines != data.expected:
            raise RuntimeError(f"matchhub found {flagged} ({lines} lines), not {data.expected}")
        copy = sum(
            raw_copy_and_index(hub.libpq, pgcopy_payload(tokens[:, :16], 1), indexes=False)[0]
            for tokens in (partner, roster)
        )
    return times, cpu, broker.peak_mib or 0.0, copy


def _psi() -> ModuleType | str:
    try:
        import private_set_intersection.python as psi  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: PLC0415
    except ImportError as exc:
        return (
            f"openmined-psi is not installed ({exc}); `pip install openmined-psi` "
            "(the bench extra) to measure it"
        )
    module: ModuleType = psi
    return module


def psi_once(psi: Any, data: PathData, fpr: float = 1e-9) -> tuple[dict[str, float], int, int]:
    """Stage seconds, intersection size and bytes that would travel, for one ECDH-PSI run with
    the ministry as client and the provider as server, revealing the intersection."""
    client = psi.client.CreateWithNewKey(True)
    server = psi.server.CreateWithNewKey(True)
    times: dict[str, float] = {}
    started = time.perf_counter()
    setup = server.CreateSetupMessage(
        fpr, len(data.roster_ids), data.partner_ids, psi.DataStructure.GCS
    )
    times["server_setup"] = time.perf_counter() - started
    mark = time.perf_counter()
    request = client.CreateRequest(data.roster_ids)
    times["client_request"] = time.perf_counter() - mark
    mark = time.perf_counter()
    response = server.ProcessRequest(request)
    times["server_response"] = time.perf_counter() - mark
    mark = time.perf_counter()
    found = client.GetIntersection(setup, response)
    times["client_intersection"] = time.perf_counter() - mark
    wire = setup.ByteSize() + request.ByteSize() + response.ByteSize()
    return times, len(found), wire


def run(ctx: Context) -> Figure:
    data = ctx.path
    figure = Figure("whole_path", "Whole path: hash, push, match (wall seconds)")
    figure.sizes = {
        "roster_ids": len(data.roster_ids),
        "partner_ids": len(data.partner_ids),
        "intersection": data.expected,
        "psi_runs": ctx.psi_repeat,
    }
    total = figure.add_series(
        "matchhub", "matchhub: hash + push + match + results", "s", higher_is_better=False
    )
    labels = {
        "push_partner": "hash and push partner (each chunk hashed while the one before is sent)",
        "push_roster": "hash and push roster (the same)",
    }
    stages = {
        stage: figure.add_series(
            stage,
            f"  of which {labels.get(stage, stage.replace('_', ' '))}",
            "s",
            higher_is_better=False,
        )
        for stage in STAGES
    }
    broker_cpu = {
        stage: figure.add_series(
            f"broker_cpu_{stage}",
            f"  broker CPU during {stage.replace('_', ' ')}",
            "s",
            higher_is_better=False,
        )
        for stage in STAGES
    }
    client_cpu = figure.add_series(
        "client_cpu",
        "  this process's CPU during the path (the connectors' hashing and pushing)",
        "s",
        higher_is_better=False,
    )
    floor = figure.add_series(
        "floor",
        "floor: hashing the same IDs + raw binary COPY of the same rows",
        "s",
        higher_is_better=False,
    )
    hashing = {
        stage: figure.add_series(
            stage, f"  of which {stage.replace('_', ' ')} alone", "s", higher_is_better=False
        )
        for stage in HASHING
    }
    copies = figure.add_series("floor_copy", "  of which the COPY", "s", higher_is_better=False)
    for n in range(ctx.repeat):
        times, used, peak, copy = matchhub_once(ctx, data, f"path{n}")
        total.add(sum(times[stage] for stage in STAGES))
        for stage in STAGES:
            stages[stage].add(times[stage])
            broker_cpu[stage].add(used[stage].broker)
        for stage in HASHING:
            hashing[stage].add(times[stage])
        client_cpu.add(sum(used[stage].client for stage in STAGES))
        floor.add(times["hash_partner"] + times["hash_roster"] + copy)
        copies.add(copy)
        figure.broker_peak_rss_mib.append(peak)
        ctx.say(
            f"whole path {n + 1}/{ctx.repeat}: matchhub {total.samples[-1]:.2f} s, "
            f"floor {floor.samples[-1]:.2f} s"
        )
    figure.comparisons.append(
        Comparison(
            "matchhub / its floor (hash + raw COPY)",
            figure.ratio("matchhub", "floor"),
            "<= 2",
            2.0,
            False,
        )
    )
    psi = _psi() if ctx.psi_repeat else "--psi-repeat 0"
    if isinstance(psi, str):
        figure.notes.append(f"openmined-psi skipped: {psi}")
        ctx.say(f"[yellow]openmined-psi skipped: {psi}")
        return figure
    baseline = figure.add_series(
        "baseline", "openmined-psi ECDH-PSI (in-process, no network)", "s", higher_is_better=False
    )
    psi_stages = {
        stage: figure.add_series(
            f"psi_{stage}", f"  of which {stage.replace('_', ' ')}", "s", higher_is_better=False
        )
        for stage in ("server_setup", "client_request", "server_response", "client_intersection")
    }
    cpu = figure.add_series("psi_cpu", "  openmined-psi CPU seconds", "s", higher_is_better=False)
    for n in range(ctx.psi_repeat):
        ctx.say(f"openmined-psi {n + 1}/{ctx.psi_repeat} (slow: about 150 s at 100k x 1M here)")
        cpu_before = time.process_time()
        times, found, wire = psi_once(psi, data)
        cpu.add(time.process_time() - cpu_before)
        if found != data.expected:
            raise RuntimeError(f"openmined-psi found {found}, expected {data.expected}")
        baseline.add(sum(times.values()))
        for stage, seconds in times.items():
            psi_stages[stage].add(seconds)
        figure.extra["psi_message_bytes"] = wire
        ctx.say(f"openmined-psi {n + 1}/{ctx.psi_repeat}: {baseline.samples[-1]:.1f} s")
    figure.extra["psi_version"] = getattr(psi, "__version__", None)
    figure.comparisons.append(
        Comparison(
            "openmined-psi / matchhub (times faster)",
            figure.ratio("baseline", "matchhub"),
            ">= 100",
            100.0,
        )
    )
    figure.notes.append(
        "matchhub's stages run one after another in one process (in a deployment the provider "
        "and the ministry hash and push in parallel, on their own machines)."
    )
    return figure
