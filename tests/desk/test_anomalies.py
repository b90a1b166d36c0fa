"""The auditor's anomaly analysis as pure logic: heavy users against their peers' median,
office hours in Baghdad, people looked up by many staff members, and the period parser."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matchhub.agency.desk import anomalies
from matchhub.agency.desk.anomalies import Access, Thresholds
from matchhub.agency.desk.auditing import Refused, parse_filters, parse_period
from matchhub.agency.desk.i18n import TIME_ZONE

T = Thresholds(factor=3.0, min_lookups=20, office_start=8, office_end=15, many_staff=3)
NOON_SUNDAY = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)  # 12:00 in Baghdad, a Sunday


def _lookup(
    user: str,
    *,
    subjects: tuple[str, ...] = ("s",),
    at: datetime = NOON_SUNDAY,
    agency: str = "molsa",
) -> Access:
    return Access(0, at, agency, user, "/v1/lookups", "accepted", subjects=subjects)


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


@given(
    st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
    )
)
def test_outside_office_hours_is_read_in_baghdad_sunday_to_thursday(moment: datetime) -> None:
    local = moment.astimezone(TIME_ZONE)
    inside = local.weekday() in {6, 0, 1, 2, 3} and 8 <= local.hour < 15
    found = anomalies.outside_hours([_lookup("du-a", at=moment)], T, TIME_ZONE)
    assert (found == []) == inside


def test_friday_and_the_small_hours_are_outside_and_refusals_are_not_lookups() -> None:
    friday = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    night = NOON_SUNDAY.replace(hour=23)  # 02:00 on Monday in Baghdad
    refused = Access(1, night, "molsa", "du-a", "/v1/lookups", "refused", "unknown_purpose")
    found = anomalies.outside_hours(
        [_lookup("du-a", at=friday), _lookup("du-b", at=night), _lookup("du-c"), refused],
        T,
        TIME_ZONE,
    )
    assert [a.end_user for a in found] == ["du-a", "du-b"]


@given(st.lists(st.tuples(st.sampled_from("abcde"), st.sampled_from("xyz")), max_size=40))
def test_a_person_is_widely_looked_up_when_enough_different_staff_looked(
    pairs: list[tuple[str, str]],
) -> None:
    accesses = [_lookup(f"du-{user}", subjects=(subject,)) for user, subject in pairs]
    found = {w.subject: len(w.staff) for w in anomalies.widely_looked_up(accesses, T)}
    for subject in "xyz":
        staff = {u for u, s in pairs if s == subject}
        assert (subject in found) == (len(staff) >= T.many_staff)


def test_volume_counts_requests_per_day_agency_and_end_user() -> None:
    late = NOON_SUNDAY.replace(hour=22)  # already Monday in Baghdad
    volume = anomalies.volume(
        [_lookup("du-a"), _lookup("du-a", at=late), _lookup("du-b", agency="moh")], TIME_ZONE
    )
    assert volume.per_day == {date(2026, 12, 6): 2, date(2026, 12, 7): 1}
    assert volume.per_agency == {"molsa": 2, "moh": 1}
    assert volume.per_end_user == {"du-a": 2, "du-b": 1}


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
