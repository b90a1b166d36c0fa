"""The figures as rich tables (medians, min–max, the targets) and as one JSON document."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

SCHEMA = "matchhub-benchmarks/1"


def number(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit in ("rows/s", "IDs/s", "req/s"):
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:,.2f}"
    if unit == "s":
        return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
    return f"{value:,.3g}"


def render(document: dict[str, Any], console: Console) -> None:
    m = document["machine"]
    console.print(
        f"\n[bold]matchhub benchmarks[/bold] — {document['mode']} run, "
        f"{document['repeat']} repeats, {document['seconds']:.0f} s "
        f"(CPU steal {document.get('cpu_steal_percent')} %)\n"
        f"machine: {m['cpu']}, {m['usable_cores']} cores, {m['memory_gib']} GiB; "
        f"{m['python']}, PostgreSQL {m['postgresql']}, DuckDB {m['duckdb']}; "
        f"matchhub {document.get('source', {}).get('commit')}"
        f"{' (src modified)' if document.get('source', {}).get('src_modified') else ''}; "
        f"command: {document['command']}"
    )
    if document.get("source_at_end") not in (None, document.get("source")):
        console.print(
            f"[red]the source changed during the run ({document['source']} → "
            f"{document['source_at_end']}): figures may come from different versions[/red]"
        )
    figures = Table(title="Figures (median, min–max over the repeats)", title_justify="left")
    for column in ("figure", "measurement", "median", "min – max", "unit", "n"):
        figures.add_column(column, justify="right" if column in ("median", "n") else "left")
    targets = Table(title="Against the targets", title_justify="left")
    for column in ("figure", "comparison", "value", "target", "met"):
        targets.add_column(column)
    memory = Table(title="Broker process peak memory (VmHWM)", title_justify="left")
    memory.add_column("figure")
    memory.add_column("MiB, max", justify="right")
    memory.add_column("brokers", justify="right")
    for name, figure in document["figures"].items():
        if figure.get("skipped"):
            figures.add_row(name, f"[yellow]skipped: {figure['skipped']}", "", "", "", "")
            continue
        first = True
        for series in figure["series"].values():
            low, high = series["min"], series["max"]
            figures.add_row(
                name if first else "",
                series["label"],
                number(series["median"], series["unit"]),
                f"{number(low, series['unit'])} – {number(high, series['unit'])}",
                series["unit"],
                str(series["n"]),
            )
            first = False
        figures.add_section()
        for comparison in figure["comparisons"]:
            met = comparison["met"]
            verdict = "–" if met is None else "[green]yes" if met else "[red]no"
            value = comparison["value"]
            targets.add_row(
                name,
                comparison["text"],
                "–" if value is None else f"{value:.3g}",
                comparison["target"] or "(reported)",
                verdict,
            )
        peak = figure["broker_peak_rss_mib"]
        if peak["max"] is not None:
            memory.add_row(name, f"{peak['max']:,.0f}", str(len(peak["samples"])))
    console.print(figures)
    console.print(targets)
    console.print(memory)
    for name, figure in document["figures"].items():
        for note in figure.get("notes", []):
            console.print(f"[dim]{name}: {note}[/dim]")
