"""The lookups' view (lookups/inmemory.py) against plain Python sets: membership by binary search
over the tokens' high 64 bits, decided by the low ones (tokens sharing a high half, and tokens
with runs of zero bytes, are where it could go wrong), and the answers it assembles."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from matchhub.lookups.inmemory import FlagSource, HubView, RosterView, TokenSet

# Tokens with few distinct bytes, so collisions, shared halves and zero runs are common.
token = (
    st.binary(min_size=16, max_size=16)
    | st.builds(
        lambda head, zeros: (head + b"\x00" * zeros)[:16].ljust(16, b"\x00"),
        st.binary(min_size=0, max_size=16),
        st.integers(0, 16),
    )
    | st.builds(
        lambda hi, lo: hi + lo,
        st.sampled_from([b"\x00" * 8, b"\xff" * 8, b"a" * 8]),
        st.binary(min_size=8, max_size=8),
    )
)
tokens = st.lists(token, max_size=40)


@given(tokens, tokens)
def test_membership_is_set_membership(held: list[bytes], asked: list[bytes]) -> None:
    found = TokenSet(b"".join(held)).contains(TokenSet.queries(b"".join(asked)))
    assert found.tolist() == [t in set(held) for t in asked]


@given(tokens, tokens, tokens, tokens, st.sets(st.sampled_from(["a.x", "b.y"])))
def test_answers_are_those_of_the_sets(
    roster: list[bytes],
    loans: list[bytes],
    pensions: list[bytes],
    asked: list[bytes],
    granted: set[str],
) -> None:
    as_of = date(2026, 11, 1)
    view = HubView(
        generation=1,
        credentials={},
        grants={},
        purposes=frozenset(),
        rosters={7: RosterView(3, "v1", TokenSet(b"".join(roster)))},
        sources=(
            FlagSource(4, "a.x", "bank", as_of, TokenSet(b"".join(loans))),
            FlagSource(5, "b.y", "pension", as_of, TokenSet(b"".join(pensions))),
        ),
    )
    found = view.answers(7, asked, granted)
    members = set(roster) & set(asked)
    assert (found.roster_id, found.key_version) == (3, "v1")
    assert found.members == frozenset(members)
    expected = {(t, "a.x", "bank", as_of) for t in members & set(loans) if "a.x" in granted} | {
        (t, "b.y", "pension", as_of) for t in members & set(pensions) if "b.y" in granted
    }
    assert set(found.flags) == expected
    assert view.answers(8, asked, granted).roster_id is None  # an agency with no roster
