"""``matchhub audit verify``: the auditor's offline check of an audit export, with nothing but
the protocol layer (protocol/verify.py), so it runs on the plain, agency-side install as well
as on the broker host. The broker's CLI registers this same command (cli/main.py), and
``matchhub`` on an install without the broker runs it on its own (cli/__init__.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from matchhub.agency.commandline import invoke
from matchhub.protocol.verify import (
    KEY_LIMIT,
    UnusableKey,
    VerificationError,
    read_key,
    read_regular,
    verify_export,
)

out = Console(emoji=False)
err = Console(stderr=True, soft_wrap=True, emoji=False)


class NotVerified(Exception):
    """The export does not verify: one line for the auditor, exit status 1."""


class NotChecked(Exception):
    """The check could not start (the key is not one): one line, exit status 2. Nothing was
    said about the log."""


def verify(
    export: Annotated[Path, typer.Option(help="A folder written by `audit export`.")],
    key: Annotated[Path, typer.Option(help="The log's verifier key (your own pinned copy).")],
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="A checkpoint note you saved earlier: the log must still contain that history."
        ),
    ] = None,
) -> None:
    """Offline: recompute every leaf and root, check every signature and, against a saved
    checkpoint, that nothing was rolled back or rewritten. Needs no database."""
    if not export.is_dir():
        raise NotChecked(
            f"{export} is not an export, so nothing was checked: write one on the broker host "
            "with `matchhub audit export --out DIR`"
        )
    try:
        verifier = read_key(key)
    except UnusableKey as exc:
        raise NotChecked(f"the key is unusable, so the log was not checked: {exc}") from None
    saved = None
    if checkpoint is not None:
        try:
            saved = read_regular(checkpoint, KEY_LIMIT).decode("utf-8")
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise NotChecked(f"{checkpoint.name} is not a saved checkpoint ({exc})") from None
    try:
        report = verify_export(export, verifier, saved)
    except VerificationError as exc:
        raise NotVerified(f"the audit log does NOT verify: {exc}") from None
    except OSError as exc:  # a file `audit export` writes is missing or unreadable
        name = Path(exc.filename).name if exc.filename else "a file"
        raise NotVerified(
            f"the audit log does NOT verify: the export's {name} cannot be read "
            f"({exc.strerror or exc}); `audit export` writes it, so it was removed or replaced"
        ) from None
    out.print(
        f"[green]verified[/] {report.entries} entries, {report.checkpoints} signed "
        f"checkpoints, root {report.root.hex()}"
        + ("; consistent with your saved checkpoint" if report.saved_checked else "")
    )
    if report.receipts:
        deleted = ", ".join(f"{n} {what}" for what, n in sorted(report.deleted.items()))
        out.print(f"{report.receipts} deletion receipts, each consistent: {deleted}")
    for note in report.notes:
        out.print(f"note: {note}")


def main(argv: Sequence[str]) -> int:
    """``matchhub audit verify ARGS`` where the broker is not installed; the exit status."""
    app = typer.Typer(add_completion=False)
    app.command()(verify)
    try:
        return invoke(app, argv, "matchhub audit verify")
    except NotVerified as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
    except NotChecked as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    except OSError as exc:
        err.print(f"[red]error:[/] {exc.strerror or exc}: {exc.filename or ''}", highlight=False)
    return 1
