"""The case rules (cases/service.py ``check_move``), as properties over random sequences of
moves and time: whatever a client tries, in whatever order, the moves that pass never skip
verification, never decide against a person before the response is due unless they
responded, never follow a closed or lapsed case, and every refusal carries a documented code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from matchhub.cases.models import Case, CaseState
from matchhub.cases.service import check_move, state_of
from matchhub.kit.errors import Conflict, MatchhubError, UnprocessableEntity

S = CaseState
REASONS = [
    None,
    "not_the_person",
    "source_outdated",
    "rule_not_met",
    "other",
    "upheld",
    "withdrawn",
]
CODES = {
    "invalid_reason",
    "case_closed",
    "case_lapsed",
    "not_verified",
    "response_not_due",
    "illegal_transition",
}
CHAIN = {  # the order, as a reader checks it
    S.indication: {S.verifying},
    S.verifying: {S.confirmed, S.refuted},
    S.confirmed: {S.notified, S.decided},
    S.refuted: {S.closed},
    S.notified: {S.responded, S.decided},
    S.responded: {S.decided},
    S.decided: {S.closed},
}
LAPSE = timedelta(days=60)
NOTICE = timedelta(days=30)

FITTING: dict[S, list[str | None]] = {
    S.refuted: ["not_the_person", "source_outdated", "rule_not_met", "other"],
    S.decided: ["upheld", "withdrawn"],
}


@st.composite
def moves(draw: st.DrawFn) -> list[tuple[S, str | None, int]]:
    """Moves a client might try: mostly one the chain would allow from some state with a reason
    that fits it (so long paths are walked), sometimes anything at all; and time passing, in
    steps around the deadlines."""
    attempts: list[tuple[S, str | None, int]] = []
    for _ in range(draw(st.integers(min_value=0, max_value=20))):
        if draw(st.booleans()):
            to = draw(
                st.sampled_from(
                    [
                        S.verifying,
                        S.confirmed,
                        S.refuted,
                        S.notified,
                        S.responded,
                        S.decided,
                        S.closed,
                    ]
                )
            )
            reason = draw(st.sampled_from(FITTING.get(to, [None])))
        else:
            to, reason = draw(st.sampled_from(list(S))), draw(st.sampled_from(REASONS))
        days = draw(st.sampled_from([0, 0, 0, 1, 5, 29, 31, 61]))
        attempts.append((to, reason, days))
    return attempts


def _refusal(
    state: S, to: S, reason: str | None, due: datetime | None, now: datetime
) -> MatchhubError | None:
    try:
        check_move(state, to, reason, response_due_at=due, now=now)
    except (Conflict, UnprocessableEntity) as refused:
        return refused
    return None


@settings(max_examples=600, deadline=None)
@given(moves())
def test_no_sequence_of_moves_breaks_due_process(attempts: list[tuple[S, str | None, int]]) -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    case = Case(state=S.indication.value, lapses_at=now + LAPSE, response_due_at=None)
    visited = [S.indication]
    for to, reason, days in attempts:
        now += timedelta(days=days)
        state = state_of(case, now)
        refused = _refusal(state, to, reason, case.response_due_at, now)
        if refused is not None:
            assert refused.code in CODES
            assert (refused.status_code == 422) == (refused.code == "invalid_reason")
            continue
        assert state not in (S.closed, S.lapsed)
        assert to in CHAIN[state]
        if to is S.decided:
            assert S.confirmed in visited
            assert reason in ("upheld", "withdrawn")
            if reason == "upheld":
                assert S.responded in visited or (
                    case.response_due_at is not None and now >= case.response_due_at
                )
        if to is S.refuted:
            assert reason in ("not_the_person", "source_outdated", "rule_not_met", "other")
        if to is S.notified:
            case.response_due_at = now + NOTICE
        case.state = to.value
        visited.append(to)
    if S.verifying not in visited and attempts:
        elapsed = sum(days for _, _, days in attempts)
        assert (state_of(case, now) is S.lapsed) == (elapsed >= LAPSE.days)
