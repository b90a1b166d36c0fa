"""Concurrent mutual-TLS clients against a broker on loopback, bounded in time and in count.

Each client is its own ``httpx.AsyncClient`` with one keep-alive TLS connection (its handshake
is made before the clock starts); all of them run on one asyncio loop in this process.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks.measure import CpuMeter, CpuSplit, percentile
from matchhub.agency.connector.client import AgencyCredentials


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    bodies: tuple[bytes, ...] = ()  # cycled through; empty for a GET

    @classmethod
    def get(cls, path: str) -> Request:
        return cls("GET", path)


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies: list[float]
    errors: Counter[str] = field(default_factory=Counter)
    cpu: CpuSplit = field(default_factory=CpuSplit)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "errors": dict(self.errors),
            "cpu": self.cpu.to_json(),
        }


async def _load(
    *,
    url: str | Sequence[str],
    context: ssl.SSLContext,
    request: Request,
    clients: int,
    seconds: float,
    max_requests: int,
    broker_pid: int | Sequence[int] | None,
) -> LoadResult:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(30.0)
    urls = [url] if isinstance(url, str) else list(url)
    pool = [  # the clients spread evenly over the brokers, as a balancer in front would
        httpx.AsyncClient(
            base_url=urls[n % len(urls)], verify=context, limits=limits, timeout=timeout
        )
        for n in range(clients)
    ]
    bodies = itertools.cycle(request.bodies or (b"",))
    headers = {"content-type": "application/json"} if request.bodies else {}
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    issued = 0

    async def one(client: httpx.AsyncClient) -> httpx.Response:
        if request.method == "GET":
            return await client.get(request.path)
        return await client.request(
            request.method, request.path, content=next(bodies), headers=headers
        )

    try:
        # Every client's TLS handshake (and a first request) before the clock starts.
        for response in await asyncio.gather(*(one(c) for c in pool)):
            if response.status_code != 200:
                raise RuntimeError(
                    f"{request.method} {request.path}: {response.status_code} {response.text}"
                )
        deadline = time.perf_counter() + seconds

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal issued
            while issued < max_requests and time.perf_counter() < deadline:
                issued += 1
                started = time.perf_counter()
                try:
                    response = await one(client)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors[str(response.status_code)] += 1

        meter = CpuMeter(broker_pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in pool))
        elapsed = time.perf_counter() - started
        cpu = meter.stop(elapsed)
    finally:
        await asyncio.gather(*(c.aclose() for c in pool))
    return LoadResult(len(latencies), elapsed, latencies, errors, cpu)


def run_load(
    url: str | Sequence[str],
    credentials: AgencyCredentials,
    request: Request,
    *,
    clients: int,
    seconds: float,
    max_requests: int = 5_000_000,
    broker_pid: int | Sequence[int] | None = None,
) -> LoadResult:
    """``clients`` concurrent clients sending ``request`` for ``seconds`` (or ``max_requests``
    in all, whichever comes first); only 200 answers count. Several URLs (broker processes)
    share the clients evenly."""
    return asyncio.run(
        _load(
            url=url,
            context=credentials.ssl_context(),
            request=request,
            clients=clients,
            seconds=seconds,
            max_requests=max_requests,
            broker_pid=broker_pid,
        )
    )
