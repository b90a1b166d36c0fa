"""Logging: structlog, configured by the processes matchhub starts (``matchhub serve`` and
the rest of the operator CLI), never at import.

Exceptions are rendered as plain tracebacks. structlog's default, with rich installed, prints
every frame's local variables, and here a local may hold chunk bodies (wire tokens), stored
tokens or key material: a traceback names the code, never the data.

Colours only on a terminal: a log written to a file (``broker.log``, a service's journal) holds
no ANSI escape codes. ``NO_COLOR`` turns them off on a terminal too.
"""

from __future__ import annotations

import os
import sys

import structlog


def colours() -> bool:
    """Whether the log may colour its lines: stdout (where structlog prints) is a terminal."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def configure() -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.StackInfoRenderer(),
            structlog.dev.set_exc_info,
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=True),
            structlog.dev.ConsoleRenderer(
                colors=colours(), exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    )
