"""
``matchhub-desk``: the ministry's web application, run on the ministry's own premises.

Staff sign in with a name and a password; the desk holds the ministry's client certificate, the
matching key and the roster extract in its home folder, and no page ever shows any of them, nor
a token. It registers the roster, runs collective matches and lookups at the broker as the
named staff member (``Matchhub-End-User``: a pseudonymous id, never a name), and turns the
broker's answers (tokens and flag codes) back into the ministry's own beneficiaries and
households locally, by recomputing its roster's tokens: nothing new goes to the broker.

Agency side: it imports the protocol layer and the connector client, never the broker. It is
the ``desk`` extra (``pip install 'matchhub[desk]'``); docs/desk.md is its manual.
"""

from __future__ import annotations

import sys

# What `pip install 'matchhub[desk]'` adds to the agency side's install.
DESK_MODULES = frozenset(
    {
        "alembic",
        "argon2",
        "babel",
        "jinja2",
        "multipart",
        "python_multipart",
        "psycopg",
        "sqlalchemy",
        "starlette",
        "uvicorn",
        "xlsxwriter",
    }
)


def main() -> None:
    """The ``matchhub-desk`` command; on an install without the desk extra, one line saying
    what to install."""
    try:
        from matchhub.agency.desk.cli import main as run  # noqa: PLC0415 (the desk's extra)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in DESK_MODULES:
            raise
        print(
            f"matchhub-desk: the desk is not installed here ({exc.name} is missing); "
            "install it with: pip install 'matchhub[desk]'",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    run()
