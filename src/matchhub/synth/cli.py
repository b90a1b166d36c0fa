"""``synth generate``: write a synthetic population, every agency's extract and the ground truth.

`synth_app` is a typer app, mounted by the operator CLI as ``matchhub synth`` (and runnable alone
as ``python -m matchhub.synth.cli``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from matchhub.synth.extracts import generate as generate_all

__all__ = ["synth_app"]

synth_app = typer.Typer(
    help="Synthetic data: a population, each agency's extract, and the ground truth.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_out = Console(emoji=False)


@synth_app.callback()
def _group() -> None:
    """Synthetic data: a population, each agency's extract, and the ground truth."""


MAX_PEOPLE = 50_000_000


@synth_app.command()
def generate(
    people: Annotated[
        int, typer.Option(min=1, max=MAX_PEOPLE, help=f"Population size (1 to {MAX_PEOPLE:,}).")
    ],
    out: Annotated[Path, typer.Option(help="Folder to write (created; must be empty).")],
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same files.")] = 1,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the files of an earlier run in OUT.")
    ] = False,
) -> None:
    """Generate PEOPLE synthetic people and every agency's extract into OUT, with truth.json."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise typer.BadParameter(f"{out} is not empty (use --overwrite)", param_hint="--out")
    started = time.monotonic()
    truth = generate_all(people, seed, out)
    seconds = time.monotonic() - started
    table = Table(title=f"synthetic data in {out} (seed {seed})", title_justify="left")
    table.add_column("extract")
    table.add_column("rows", justify="right")
    table.add_column("people", justify="right")
    table.add_column("to reject", justify="right")
    for kind, extract in truth["extracts"].items():
        table.add_row(
            f"{extract['file']} ({kind})",
            f"{extract['rows']:,}",
            f"{extract['people']:,}",
            f"{sum(extract['rejected'].values()):,}",
        )
    _out.print(table)
    flags = Table(title="ground truth (truth.csv, truth.json)", title_justify="left")
    flags.add_column("flag")
    flags.add_column("population", justify="right")
    flags.add_column("on the roster", justify="right")
    for code, counts in truth["flags"].items():
        flags.add_row(code, f"{counts['population']:,}", f"{counts['roster']:,}")
    _out.print(flags)
    _out.print(
        f"{truth['people']:,} people in {truth['households']:,} households; "
        f"{truth['roster']:,} on the roster, {truth['roster_flagged']:,} of them flagged; "
        f"{seconds:.1f} s"
    )


if __name__ == "__main__":
    synth_app()
