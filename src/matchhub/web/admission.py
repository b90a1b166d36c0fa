"""Admission control: at most ``Settings.request_concurrency`` requests inside the app at once.

Sync routes run on anyio's thread pool, one hop per dependency and one for the route, and a
request's database session holds its pooled connection across those hops. Left unbounded, a
burst of clients fills the thread pool with requests blocked on the connection pool while the
requests holding connections wait for a thread: everything stalls until the pool's timeout
fails some of them. Admitting no more requests than there are connections keeps every admitted
request runnable; the rest wait here, on the event loop, costing nothing. The health endpoints
bypass the limit, so liveness and readiness answer under load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from matchhub.web.health import UNSCOPED_ROUTES

Scope = MutableMapping[str, Any]


class AdmissionMiddleware:
    def __init__(self, app: Callable[..., Awaitable[None]], limit: int) -> None:
        self.app = app
        self.slots = asyncio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in UNSCOPED_ROUTES:
            await self.app(scope, receive, send)
            return
        async with self.slots:
            await self.app(scope, receive, send)
