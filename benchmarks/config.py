"""The sizes of each run mode, and what every figure is handed."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.data import BulkData, PathData, make_bulk, make_path


@dataclass(frozen=True)
class Sizes:
    mode: str
    ingest_rows: int  # figure 1: rows pushed per measurement
    roster: int  # figures 2-4: the ministry's roster
    partner_rows: int  # figures 2-4: rows across the six providers
    roster_share: float  # each provider holds this share of the roster
    clients: int  # figures 3-4: concurrent mTLS clients
    lookup_tokens: int  # tokens per lookup request
    lookup_seconds: float  # figure 3: each measured window
    audit_seconds: float  # figure 4: each measured window
    hashing_ids: int  # figure 5: IDs per measurement
    path_roster: int  # figure 6: the ministry's IDs
    path_partner: int  # figure 6: the provider's IDs
    psi_repeat: int | None  # openmined-psi runs (None: as --repeat)
    desk_roster: int = 1_000_000  # figure 7: the desk's roster extract
    desk_flagged: int = 150_000  # figure 7: flagged members in the job result
    chunk_rows: int = 50_000  # the connector's default
    job_timeout: float = 1800.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


QUICK = Sizes(
    mode="quick",
    ingest_rows=1_000_000,
    roster=1_000_000,
    partner_rows=5_000_000,
    roster_share=0.04,
    clients=50,
    lookup_tokens=10,
    lookup_seconds=10.0,
    audit_seconds=5.0,
    hashing_ids=500_000,
    path_roster=100_000,
    path_partner=1_000_000,
    # One openmined-psi run at 100k x 1M takes about 150 s here: once in the quick run.
    psi_repeat=1,
)

FULL = Sizes(
    mode="full",
    ingest_rows=10_000_000,
    roster=7_000_000,
    partner_rows=50_000_000,
    roster_share=0.04,
    clients=50,
    lookup_tokens=10,
    lookup_seconds=10.0,
    audit_seconds=10.0,
    hashing_ids=2_000_000,
    path_roster=100_000,
    path_partner=1_000_000,
    psi_repeat=None,
    desk_roster=7_000_000,
    desk_flagged=1_000_000,
    job_timeout=3600.0,
)

TINY = Sizes(
    mode="tiny",
    ingest_rows=2_000,
    roster=2_000,
    partner_rows=10_000,
    roster_share=0.1,
    clients=5,
    lookup_tokens=10,
    lookup_seconds=1.0,
    audit_seconds=1.0,
    hashing_ids=2_000,
    path_roster=200,
    path_partner=2_000,
    psi_repeat=1,
    desk_roster=2_000,
    desk_flagged=300,
    chunk_rows=500,
    job_timeout=120.0,
)

MODES = {"quick": QUICK, "full": FULL, "tiny": TINY}


@dataclass
class Context:
    sizes: Sizes
    repeat: int
    admin_url: str
    root: Path
    console: Console
    profile_dir: Path | None = None
    shared: dict[str, Any] = field(default_factory=dict)  # state figures share (the world)
    stack: ExitStack = field(default_factory=ExitStack)  # closed at the end: drops shared hubs

    def say(self, message: str) -> None:
        self.console.log(message)

    @property
    def psi_repeat(self) -> int:
        return self.repeat if self.sizes.psi_repeat is None else self.sizes.psi_repeat

    @cached_property
    def bulk(self) -> BulkData:
        s = self.sizes
        self.say(f"generating {s.roster:,} roster and {s.partner_rows:,} partner tokens")
        return make_bulk(s.roster, s.partner_rows, s.roster_share)

    @cached_property
    def path(self) -> PathData:
        s = self.sizes
        self.say(f"generating {s.path_roster:,} + {s.path_partner:,} national IDs")
        return make_path(s.path_roster, s.path_partner)
