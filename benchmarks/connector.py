"""Figure 5: connector hashing, national IDs → wire tokens per second on one core, against the
standard library's one-shot ``hmac.new``; measured by ``benchmarks/hashing.py``'s own cases."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from types import ModuleType

from benchmarks.config import Context
from benchmarks.measure import Comparison, Figure
from matchhub.protocol.tokens import MatchingKey

TARGET_PER_CORE = 600_000


def _hashing() -> ModuleType | str:
    try:
        from benchmarks import hashing  # noqa: PLC0415 (another engineer's module, optional)
    except Exception as exc:  # any import failure means: not ready, skip with the reason
        return f"benchmarks/hashing.py is not importable ({type(exc).__name__}: {exc})"
    missing = [n for n in ("national_ids", "single_core", "all_cores") if not hasattr(hashing, n)]
    if missing:
        return f"benchmarks/hashing.py lacks {', '.join(missing)}"
    return hashing


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def run(ctx: Context) -> Figure:
    s = ctx.sizes
    figure = Figure("hashing", "Connector hashing, IDs/s per core")
    hashing = _hashing()
    if isinstance(hashing, str):
        figure.skipped = hashing
        return figure
    cores = int(hashing.usable_cores()) if hasattr(hashing, "usable_cores") else 1
    figure.sizes = {"ids": s.hashing_ids, "scheme": "iq.ncn", "processes_all_cores": cores}
    key = MatchingKey.generate("benchmark")
    ids = hashing.national_ids(0, s.hashing_ids)
    names: dict[str, str] = {}
    for n in range(ctx.repeat):
        rates: dict[str, float] = hashing.single_core(key, ids, 1)
        for name, rate in rates.items():
            if name not in names:
                names[name] = _key(name)
                if "baseline" in name:
                    names[name] = "baseline"
                elif "token_rows" in name:
                    names[name] = "matchhub"
                figure.add_series(names[name], f"{name}, one core", "IDs/s")
            figure.series[names[name]].add(rate)
        ctx.say(
            f"hashing {n + 1}/{ctx.repeat}: "
            + ", ".join(f"{name} {rate:,.0f}" for name, rate in rates.items())
        )
    if "matchhub" not in figure.series or "baseline" not in figure.series:
        figure.skipped = "benchmarks/hashing.py has no 'token_rows' or 'baseline' case"
        return figure
    parallel = figure.add_series(
        "all_cores", f"connector token_rows, {cores} processes, per core", "IDs/s"
    )
    with tempfile.TemporaryDirectory() as folder:
        key_file = Path(folder) / "benchmark-key.json"
        key.to_file(key_file)
        for _ in range(ctx.repeat):
            result = hashing.all_cores(key_file, s.hashing_ids, cores, 1)
            parallel.add(result.ids_per_second / result.processes)
    figure.comparisons += [
        Comparison(
            "connector token_rows, IDs/s per core",
            figure.series["matchhub"].median,
            f">= {TARGET_PER_CORE:,}",
            TARGET_PER_CORE,
        ),
        Comparison("connector token_rows / stdlib hmac.new", figure.ratio("matchhub", "baseline")),
    ]
    figure.notes.append(
        "Cases and their names come from benchmarks/hashing.py (python benchmarks/hashing.py "
        "runs it alone); each repeat is one pass over the IDs."
    )
    return figure
