"""What an auditor looks for in a period of the log, as pure functions of its entries.

No database, no broker, no page: the auditor's pages (auditing.py) fetch the entries and show
what these return, with the reasoning each finding carries, so an auditor can check it by hand.

* **Volume**: requests per day, per agency and per end user (the staff member a desk named).
* **Heavy users**: an end user whose people looked up exceed ``factor`` times the median of
  their peers' (the other end users of the same agency in the period), and at least
  ``min_lookups``. The median, not the mean, so the heavy user does not raise their own bar.
* **Outside office hours**: accesses before ``office_start`` or from ``office_end`` local time,
  or on a day that is not a working day (Iraq's week: Sunday to Thursday).
* **Widely looked up**: a person (a subject digest: never a token) looked up by at least
  ``many_staff`` different end users.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

LOOKUP_ROUTE = "/v1/lookups"
WORKDAYS = frozenset({6, 0, 1, 2, 3})  # Python's weekday(): Sunday=6, Monday=0 ... Thursday=3
NOBODY = "—"
"""The end user of an entry whose caller named none (a script with the certificate)."""


@dataclass(frozen=True)
class Access:
    """One entry of the log, as far as an auditor's analysis needs it."""

    seq: int
    time: datetime
    agency: str | None
    end_user: str | None
    route: str | None
    outcome: str | None
    error: str | None = None
    purpose: str | None = None
    subjects: tuple[str, ...] = ()
    tokens_in: int = 0
    on_roster: int | None = None
    flags_out: int | None = None

    @property
    def lookup(self) -> bool:
        return self.route == LOOKUP_ROUTE and self.outcome == "accepted"

    @property
    def people(self) -> int:
        """People this entry looked up (0 for anything but an accepted lookup)."""
        return (len(self.subjects) or self.tokens_in) if self.lookup else 0

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> Access:
        """From one item of ``GET /v1/audit/entries``'s ``entries``."""
        body: Mapping[str, Any] = entry.get("entry", {})
        return cls(
            seq=int(entry["seq"]),
            time=datetime.fromisoformat(str(entry["created_at"])),
            agency=entry.get("agency"),
            end_user=entry.get("end_user"),
            route=entry.get("route"),
            outcome=body.get("outcome"),
            error=body.get("error"),
            purpose=body.get("purpose"),
            subjects=tuple(body.get("subjects", ())),
            tokens_in=int(body.get("tokens_in", 0) or 0),
            on_roster=body.get("on_roster"),
            flags_out=body.get("flags_out"),
        )


@dataclass(frozen=True)
class Thresholds:
    factor: float = 3.0
    min_lookups: int = 20
    office_start: int = 8
    office_end: int = 15
    many_staff: int = 3


@dataclass(frozen=True)
class HeavyUser:
    end_user: str
    agency: str
    people: int
    peers: int
    peer_median: float
    ratio: float


@dataclass(frozen=True)
class WidelyLookedUp:
    subject: str
    staff: tuple[str, ...]
    agencies: tuple[str, ...]
    lookups: int


@dataclass
class Volume:
    per_day: dict[date, int] = field(default_factory=dict)
    per_agency: dict[str, int] = field(default_factory=dict)
    per_end_user: dict[str, int] = field(default_factory=dict)
    per_day_agency: dict[date, dict[str, int]] = field(default_factory=dict)


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def volume(accesses: Iterable[Access], zone: ZoneInfo) -> Volume:
    """Requests per day, per agency, per end user, and per day and agency."""
    per_day: Counter[date] = Counter()
    per_agency: Counter[str] = Counter()
    per_user: Counter[str] = Counter()
    grid: dict[date, Counter[str]] = defaultdict(Counter)
    for access in accesses:
        day = local_day(access.time, zone)
        agency = access.agency or NOBODY
        per_day[day] += 1
        per_agency[agency] += 1
        grid[day][agency] += 1
        if access.end_user:
            per_user[access.end_user] += 1
    return Volume(
        per_day=dict(sorted(per_day.items())),
        per_agency=dict(per_agency.most_common()),
        per_end_user=dict(per_user.most_common()),
        per_day_agency={d: dict(c) for d, c in sorted(grid.items())},
    )


def people_per_user(accesses: Iterable[Access]) -> dict[tuple[str, str], int]:
    """(agency, end user) → people looked up, for every end user who looked anyone up."""
    counts: Counter[tuple[str, str]] = Counter()
    for access in accesses:
        if access.lookup and access.end_user:
            counts[(access.agency or NOBODY, access.end_user)] += access.people
    return dict(counts)


def heavy_users(counts: Mapping[tuple[str, str], int], thresholds: Thresholds) -> list[HeavyUser]:
    """End users far above their peers: more than ``factor`` times the median of the other
    end users of their agency, and at least ``min_lookups``. An end user with no peer is
    compared with nobody (and never flagged): there is no "usual" to be far above."""
    by_agency: dict[str, dict[str, int]] = defaultdict(dict)
    for (agency, user), people in counts.items():
        by_agency[agency][user] = people
    found: list[HeavyUser] = []
    for agency, users in by_agency.items():
        for user, people in users.items():
            peers = [n for other, n in users.items() if other != user]
            if not peers or people < thresholds.min_lookups:
                continue
            median = float(statistics.median(peers))
            if people > thresholds.factor * median:
                ratio = people / median if median else float("inf")
                found.append(HeavyUser(user, agency, people, len(peers), median, ratio))
    return sorted(found, key=lambda h: (-h.people, h.end_user))


def outside_hours(
    accesses: Iterable[Access], thresholds: Thresholds, zone: ZoneInfo
) -> list[Access]:
    """Lookups made before the office opens, after it closes, or on a day it is closed."""
    return [
        a for a in accesses if a.lookup and not _office_time(a.time.astimezone(zone), thresholds)
    ]


def _office_time(local: datetime, thresholds: Thresholds) -> bool:
    return (
        local.weekday() in WORKDAYS
        and thresholds.office_start <= local.hour < thresholds.office_end
    )


def widely_looked_up(accesses: Iterable[Access], thresholds: Thresholds) -> list[WidelyLookedUp]:
    """People looked up by at least ``many_staff`` different end users."""
    staff: dict[str, set[str]] = defaultdict(set)
    agencies: dict[str, set[str]] = defaultdict(set)
    lookups: Counter[str] = Counter()
    for access in accesses:
        if not access.lookup:
            continue
        for subject in set(access.subjects):
            staff[subject].add(access.end_user or NOBODY)
            agencies[subject].add(access.agency or NOBODY)
            lookups[subject] += 1
    found = [
        WidelyLookedUp(s, tuple(sorted(who)), tuple(sorted(agencies[s])), lookups[s])
        for s, who in staff.items()
        if len(who) >= thresholds.many_staff
    ]
    return sorted(found, key=lambda w: (-len(w.staff), w.subject))


@dataclass
class Findings:
    volume: Volume
    heavy: list[HeavyUser]
    off_hours: list[Access]
    widely: list[WidelyLookedUp]
    lookups: int
    entries: int


def analyse(accesses: Sequence[Access], thresholds: Thresholds, zone: ZoneInfo) -> Findings:
    return Findings(
        volume=volume(accesses, zone),
        heavy=heavy_users(people_per_user(accesses), thresholds),
        off_hours=outside_hours(accesses, thresholds, zone),
        widely=widely_looked_up(accesses, thresholds),
        lookups=sum(1 for a in accesses if a.lookup),
        entries=len(accesses),
    )
