"""The auditor's anomaly analysis as pure logic, from the broker's counts of a period: heavy
users against their peers' median, Iraq's office hours, the findings' totals, and the period
and filter parsers."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matchhub.agency.desk import anomalies
from matchhub.agency.desk.anomalies import Thresholds
from matchhub.agency.desk.auditing import Refused, parse_filters, parse_period

T = Thresholds(factor=3.0, min_lookups=20, office_start=8, office_end=15, many_staff=3)

counts = st.dictionaries(
    st.tuples(st.sampled_from(["molsa", "moh"]), st.from_regex(r"du-[a-z]{4}", fullmatch=True)),
    st.integers(min_value=0, max_value=500),
    max_size=12,
)


@given(counts)
def test_a_heavy_user_is_above_the_factor_times_their_peers_median_and_the_minimum(
    people: dict[tuple[str, str], int],
) -> None:
    flagged = {(h.agency, h.end_user) for h in anomalies.heavy_users(people, T)}
    for (agency, user), n in people.items():
        peers = sorted(m for (a, u), m in people.items() if a == agency and u != user)
        if not peers:
            assert (agency, user) not in flagged
            continue
        middle = len(peers) // 2
        median = peers[middle] if len(peers) % 2 else (peers[middle - 1] + peers[middle]) / 2
        assert ((agency, user) in flagged) == (n >= T.min_lookups and n > T.factor * median)


@given(counts, st.integers(min_value=1, max_value=1000))
def test_looking_up_more_people_never_takes_a_heavy_user_off_the_list(
    people: dict[tuple[str, str], int], more: int
) -> None:
    for heavy in anomalies.heavy_users(people, T):
        key = (heavy.agency, heavy.end_user)
        after = {
            (h.agency, h.end_user)
            for h in anomalies.heavy_users({**people, key: people[key] + more}, T)
        }
        assert key in after


@given(st.integers(min_value=2, max_value=30), st.integers(min_value=0, max_value=400))
def test_staff_who_all_look_up_as_much_are_never_heavy(staff: int, each: int) -> None:
    people = {("molsa", f"du-{i:04d}"): each for i in range(staff)}
    assert anomalies.heavy_users(people, T) == []


hour_rows = st.lists(
    st.fixed_dictionaries(
        {
            "weekday": st.integers(1, 7),
            "hour": st.integers(0, 23),
            "agency": st.just("molsa"),
            "end_user": st.sampled_from(["du-a", "du-b", "du-c"]),
            "count": st.integers(1, 50),
        }
    ),
    max_size=30,
)


@given(hour_rows)
def test_lookups_outside_office_hours_and_inside_them_add_up_to_all(
    rows: list[dict[str, int | str]],
) -> None:
    found = anomalies.outside_hours(rows, T)
    counts = [(int(r["weekday"]), int(r["hour"]), int(r["count"])) for r in rows]
    inside = sum(n for day, hour, n in counts if anomalies.office_time(day, hour, T))
    assert sum(o.lookups for o in found) + inside == sum(n for _, _, n in counts)
    for o in found:
        assert all(not anomalies.office_time(day, hour, T) for day, hour in o.slots)


def test_iraqs_week_and_office_hours() -> None:
    def office(weekday: int, hour: int) -> bool:
        return anomalies.office_time(weekday, hour, T)

    assert office(7, 8)  # Sunday, 08:00: the week's first hour
    assert office(4, 14)  # Thursday, 14:00
    assert not office(4, 15)  # Thursday, 15:00: closed (the end is exclusive)
    assert not office(5, 10)  # Friday
    assert not office(6, 10)  # Saturday
    assert not office(1, 7)  # Monday, 07:00


def _row(
    day: int, agency: str, user: str, outcome: str, count: int, **more: str
) -> dict[str, object]:
    return {
        "day": date(2026, 12, day),
        "agency": agency,
        "end_user": user,
        "route": more.get("route", "/v1/lookups"),
        "outcome": outcome,
        "error": more.get("error"),
        "purpose": more.get("purpose"),
        "count": count,
    }


def test_the_findings_of_a_periods_counts() -> None:
    activity = anomalies.Activity(
        requests=[
            _row(6, "molsa", "du-a", "accepted", 5, purpose="eligibility_review"),
            _row(7, "molsa", "du-a", "accepted", 2, purpose="fraud_investigation"),
            _row(7, "molsa", "du-b", "refused", 1, error="unknown_purpose", purpose="x"),
            _row(7, "audit-board", "du-z", "accepted", 4, route="/v1/audit/entries"),
        ],
        hours=[{"weekday": 5, "hour": 22, "agency": "molsa", "end_user": "du-a", "count": 2}],
        people={("molsa", "du-a"): 70, ("molsa", "du-b"): 3, ("molsa", "du-c"): 5},
        widely=[
            anomalies.WidelyLookedUp("d1", ("du-a", "du-b", "du-c"), 3),
            anomalies.WidelyLookedUp("d2", ("du-a", "du-b"), 2),
        ],
    )
    found = anomalies.analyse(activity, T)
    assert found.volume.per_day == {date(2026, 12, 6): 5, date(2026, 12, 7): 7}
    assert found.volume.per_agency == {"molsa": 8, "audit-board": 4}
    assert found.volume.per_end_user == {"du-a": 7, "du-z": 4, "du-b": 1}
    assert found.purposes == {"eligibility_review": 5, "fraud_investigation": 2}
    assert found.refused == {"unknown_purpose": 1}
    assert (found.lookups, found.entries) == (7, 12)
    assert [(h.end_user, h.peer_median) for h in found.heavy] == [("du-a", 4.0)]
    assert [(o.end_user, o.lookups, o.slots) for o in found.off_hours] == [("du-a", 2, ((5, 22),))]
    assert [w.subject for w in found.widely] == ["d1"]


def test_periods_and_filters_are_checked_before_anything_is_asked() -> None:
    today = date(2026, 12, 7)
    assert parse_period({}, 366, 7, today) is not None
    period = parse_period({"from": "٢٠٢٦-١٢-٠١", "to": "2026-12-03"}, 366, 7, today)
    assert period is not None
    assert (period.first, period.last) == (date(2026, 12, 1), date(2026, 12, 3))
    assert period.until - period.since == timedelta(days=3)
    assert parse_period({}, 366, None, today) is None
    for values, key in (
        ({"from": "2026-12-09", "to": "2026-12-01"}, "audit.period_order"),
        ({"from": "2025-01-01"}, "audit.period_long"),
        ({"to": "2026-02-30"}, "audit.bad_date"),
    ):
        with pytest.raises(Refused) as caught:
            parse_period(values, 366, 7, today)
        assert caught.value.key == key
    assert parse_filters({"agency": "molsa", "outcome": "refused", "error": "rate_limited"}) == {
        "agency": "molsa",
        "outcome": "refused",
        "error": "rate_limited",
    }
    for values, key in (
        ({"agency": "Mo lsa"}, "audit.bad_agency"),
        ({"end_user": "du-x"}, "audit.bad_end_user"),
        ({"route": "v1/lookups"}, "audit.bad_route"),
        ({"outcome": "maybe"}, "audit.bad_outcome"),
    ):
        with pytest.raises(Refused) as caught:
            parse_filters(values)
        assert caught.value.key == key
