"""What an auditor looks for in a period of the log, as pure functions of its counts.

No database, no broker, no page: the broker counts the period (``GET /v1/audit/activity``,
a ``GROUP BY`` over the period's range of entries, however long the log), the auditor's pages
(auditing.py) turn the counts into findings here and show them with the reasoning each one
carries, so an auditor can check it by hand.

* **Volume**: requests per day, per agency and per end user (the staff member a desk named).
* **Heavy users**: an end user whose people looked up exceed ``factor`` times the median of
  their peers' (the other end users of the same agency in the period), and at least
  ``min_lookups``. The median, not the mean, so the heavy user does not raise their own bar.
* **Outside office hours**: lookups before ``office_start`` or from ``office_end`` local time,
  or on a day that is not a working day (Iraq's week: Sunday to Thursday), per staff member.
* **Widely looked up**: a person (a subject digest: never a token) looked up by at least
  ``many_staff`` different end users.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

LOOKUP_ROUTE = "/v1/lookups"
ISO_WORKDAYS = frozenset({7, 1, 2, 3, 4})  # ISO weekdays: Sunday (7) to Thursday (4)
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
    """The person's keyed subject digest (never a token)."""
    staff: tuple[str, ...]
    lookups: int


@dataclass(frozen=True)
class OffHours:
    end_user: str
    agency: str
    lookups: int
    slots: tuple[tuple[int, int], ...]
    """The (ISO weekday, hour) slots outside office hours in which they looked people up."""


@dataclass
class Volume:
    per_day: dict[date, int] = field(default_factory=dict)
    per_agency: dict[str, int] = field(default_factory=dict)
    per_end_user: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Activity:
    """``GET /v1/audit/activity``'s answer, read."""

    requests: list[dict[str, Any]]
    hours: list[dict[str, Any]]
    people: dict[tuple[str, str], int]
    widely: list[WidelyLookedUp]

    @classmethod
    def from_answer(cls, answer: Mapping[str, Any]) -> Activity:
        return cls(
            requests=[{**r, "day": date.fromisoformat(r["day"])} for r in answer["requests"]],
            hours=list(answer["hours"]),
            people={
                (p["agency"] or NOBODY, p["end_user"]): int(p["count"])
                for p in answer["people"]
                if p["end_user"]
            },
            widely=[
                WidelyLookedUp(
                    w["subject"], tuple(u or NOBODY for u in w["staff"]), int(w["count"])
                )
                for w in answer["widely"]
            ],
        )


def volume(requests: Iterable[Mapping[str, Any]]) -> Volume:
    """Requests per local day, per agency and per staff member."""
    per_day: Counter[date] = Counter()
    per_agency: Counter[str] = Counter()
    per_user: Counter[str] = Counter()
    for row in requests:
        count = int(row["count"])
        per_day[row["day"]] += count
        per_agency[row["agency"] or NOBODY] += count
        if row["end_user"]:
            per_user[row["end_user"]] += count
    return Volume(
        per_day=dict(sorted(per_day.items())),
        per_agency=dict(per_agency.most_common()),
        per_end_user=dict(per_user.most_common()),
    )


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


def office_time(weekday: int, hour: int, thresholds: Thresholds) -> bool:
    """Whether an ISO weekday (1 Monday ... 7 Sunday) and local hour are office time."""
    return weekday in ISO_WORKDAYS and thresholds.office_start <= hour < thresholds.office_end


def outside_hours(hours: Iterable[Mapping[str, Any]], thresholds: Thresholds) -> list[OffHours]:
    """Per staff member, their lookups outside office hours and when (weekday, hour)."""
    counts: Counter[tuple[str, str]] = Counter()
    slots: dict[tuple[str, str], set[tuple[int, int]]] = defaultdict(set)
    for row in hours:
        weekday, hour = int(row["weekday"]), int(row["hour"])
        if office_time(weekday, hour, thresholds):
            continue
        who = (row["end_user"] or NOBODY, row["agency"] or NOBODY)
        counts[who] += int(row["count"])
        slots[who].add((weekday, hour))
    return [
        OffHours(user, agency, n, tuple(sorted(slots[(user, agency)])))
        for (user, agency), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


@dataclass
class Findings:
    volume: Volume
    heavy: list[HeavyUser]
    off_hours: list[OffHours]
    widely: list[WidelyLookedUp]
    lookups: int
    entries: int
    purposes: dict[str, int]
    refused: dict[str, int]


def analyse(activity: Activity, thresholds: Thresholds) -> Findings:
    requests = activity.requests
    accepted = [r for r in requests if r["outcome"] == "accepted"]
    purposes: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for row in requests:
        if row["outcome"] == "accepted" and row["purpose"]:
            purposes[row["purpose"]] += int(row["count"])
        elif row["outcome"] == "refused":
            refused[row["error"] or NOBODY] += int(row["count"])
    return Findings(
        volume=volume(requests),
        heavy=heavy_users(activity.people, thresholds),
        off_hours=outside_hours(activity.hours, thresholds),
        widely=[w for w in activity.widely if len(w.staff) >= thresholds.many_staff],
        lookups=sum(int(r["count"]) for r in accepted if r["route"] == LOOKUP_ROUTE),
        entries=sum(int(r["count"]) for r in requests),
        purposes=dict(purposes.most_common()),
        refused=dict(refused.most_common()),
    )
