"""Logging: structlog, configured by the processes matchhub starts (``matchhub serve`` and
the rest of the operator CLI), never at import.

Exceptions are rendered as plain tracebacks. structlog's default, with rich installed, prints
every frame's local variables, and here a local may hold chunk bodies (wire tokens), stored
tokens or key material: a traceback names the code, never the data.
"""

from __future__ import annotations

import structlog


def configure() -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.StackInfoRenderer(),
            structlog.dev.set_exc_info,
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=True),
            structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
        ]
    )
