"""The operator CLI, ``matchhub``: run on the broker host. Every change it makes is audited."""

from __future__ import annotations

import sys

# What `pip install 'matchhub[broker]'` adds to the agency side's install.
BROKER_MODULES = frozenset(
    {
        "alembic",
        "fastapi",
        "httptools",
        "prometheus_client",
        "psycopg",
        "pydantic_settings",
        "sqlalchemy",
        "starlette",
        "structlog",
        "uvicorn",
        "uvloop",
    }
)


def main() -> None:
    """The ``matchhub`` command. The broker is an extra (``pip install 'matchhub[broker]'``): on
    an agency's install, where only ``matchhub-connect`` belongs, say so in one line; but
    ``matchhub audit verify``, the auditor's offline check, runs there too."""
    try:
        from matchhub.cli.main import main as run  # noqa: PLC0415 (the broker's dependencies)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in BROKER_MODULES:
            raise
        if sys.argv[1:3] == ["audit", "verify"]:  # the auditor's check needs no broker
            from matchhub.agency.auditverify import main as verify  # noqa: PLC0415

            raise SystemExit(verify(sys.argv[3:])) from None
        print(
            f"matchhub: the broker is not installed here ({exc.name} is missing); "
            "install it with: pip install 'matchhub[broker]'. Without it, "
            "`matchhub audit verify --export DIR --key FILE` checks an audit export offline.",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    run()
