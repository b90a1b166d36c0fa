"""What a figure records: samples and their median and range, comparisons with targets, the
machine, and the broker process's CPU time and peak memory read from /proc."""

from __future__ import annotations

import os
import platform
import ssl
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import sqlalchemy

import matchhub

MIB = 2**20


@dataclass
class Series:
    """One measured quantity over the repeats of a figure."""

    label: str
    unit: str
    samples: list[float] = field(default_factory=list)
    higher_is_better: bool = True

    def add(self, value: float) -> None:
        self.samples.append(float(value))

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "n": len(self.samples),
            "samples": [round(s, 6) for s in self.samples],
            "median": _round(self.median),
            "min": _round(min(self.samples)) if self.samples else None,
            "max": _round(max(self.samples)) if self.samples else None,
        }


@dataclass
class Comparison:
    """matchhub against its baseline: ``value`` is the ratio the target is stated in."""

    text: str  # e.g. "matchhub / raw COPY + index"
    value: float | None
    target: str | None = None  # e.g. ">= 0.5"
    threshold: float | None = None
    at_least: bool = True  # the target is value >= threshold (else value <= threshold)

    @property
    def met(self) -> bool | None:
        if self.value is None or self.threshold is None:
            return None
        if self.at_least:
            return self.value >= self.threshold
        return self.value <= self.threshold

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "value": _round(self.value),
            "target": self.target,
            "met": self.met,
        }


@dataclass
class Figure:
    name: str
    title: str
    sizes: dict[str, Any] = field(default_factory=dict)
    series: dict[str, Series] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    broker_peak_rss_mib: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    seconds: float = 0.0

    def add_series(
        self, key: str, label: str, unit: str, *, higher_is_better: bool = True
    ) -> Series:
        series = Series(label, unit, higher_is_better=higher_is_better)
        self.series[key] = series
        return series

    def ratio(self, numerator: str, denominator: str) -> float | None:
        top, bottom = self.series[numerator].median, self.series[denominator].median
        if top is None or not bottom:
            return None
        return top / bottom

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "skipped": self.skipped,
            "sizes": self.sizes,
            "series": {key: s.to_json() for key, s in self.series.items()},
            "comparisons": [c.to_json() for c in self.comparisons],
            "broker_peak_rss_mib": {
                "samples": [round(m, 1) for m in self.broker_peak_rss_mib],
                "max": round(max(self.broker_peak_rss_mib), 1)
                if self.broker_peak_rss_mib
                else None,
            },
            "notes": self.notes,
            "extra": self.extra,
            "seconds": round(self.seconds, 1),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.6g}")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0


# --- processes -------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM (the resident set's high-water mark) of a live process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MIB
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far; 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def postgres_cpu_seconds() -> float:
    """CPU time of every process named ``postgres`` on this machine (the server and its
    backends): read-only, to show where a figure's CPU went."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "postgres":
                total += cpu_seconds(int(entry.name))
        except OSError:
            continue
    return total


@dataclass
class CpuSplit:
    """Where the CPU of a measured window went: this (client) process, the broker, PostgreSQL."""

    client: float = 0.0
    broker: float = 0.0
    postgres: float = 0.0
    wall: float = 0.0

    def to_json(self) -> dict[str, float]:
        wall = self.wall or 1.0
        return {
            "wall_seconds": round(self.wall, 3),
            "client_cores": round(self.client / wall, 2),
            "broker_cores": round(self.broker / wall, 2),
            "postgres_cores": round(self.postgres / wall, 2),
        }


class CpuMeter:
    def __init__(self, broker_pid: int | Sequence[int] | None) -> None:
        """``broker_pid``: one broker process, or several whose CPU is summed."""
        pids = (broker_pid,) if isinstance(broker_pid, int) else tuple(broker_pid or ())
        self.broker_pids = pids
        self._start = self._read()

    def _read(self) -> tuple[float, float, float]:
        broker = sum(cpu_seconds(pid) for pid in self.broker_pids)
        return (os.times().user + os.times().system, broker, postgres_cpu_seconds())

    def stop(self, wall: float) -> CpuSplit:
        end = self._read()
        client, broker, postgres = (b - a for a, b in zip(self._start, end, strict=True))
        return CpuSplit(client, broker, postgres, wall)

    def lap(self, wall: float) -> CpuSplit:
        """The CPU since the last lap (or the start), then a new lap begins."""
        split = self.stop(wall)
        self._start = self._read()
        return split


def cpu_ticks() -> tuple[int, int]:
    """(all, steal) jiffies of the machine so far: how much CPU a hypervisor took away."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return (0, 0)
    values = [int(f) for f in fields[:8]]
    return (sum(values), values[7] if len(values) > 7 else 0)


def steal_percent(start: tuple[int, int], end: tuple[int, int]) -> float | None:
    total = end[0] - start[0]
    return round(100 * (end[1] - start[1]) / total, 2) if total > 0 else None


def _git(*args: str) -> str:
    repo = Path(__file__).resolve().parents[1]
    return subprocess.run(
        ["git", *args],  # noqa: S607 (git from PATH, fixed arguments)
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout.strip()


def source_version() -> dict[str, Any]:
    """What the brokers run: the last commit that touched src/, and whether src/ differs from
    it (HEAD itself may move on with README or benchmark commits that change no broker code)."""
    try:
        return {
            "commit": _git("log", "-1", "--format=%h", "--", "src"),
            "src_modified": bool(_git("status", "--porcelain", "--", "src")),
        }
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "src_modified": None}


# --- the machine -----------------------------------------------------------------------------


def machine(postgres_version: str | None = None) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = 0
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": round(memory / 2**30, 1),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "openssl": ssl.OPENSSL_VERSION,
        "postgresql": postgres_version,
        "duckdb": duckdb.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "matchhub": matchhub.__version__,
    }
