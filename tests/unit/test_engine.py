"""The match engine against a plain-Python reference on small random worlds, including more
sources than one 64-bit mask word holds, tokens on the roster twice, tokens that share their
high half (the merge then searches), roster ordinals that are any distinct row numbers, merges
cut into slices of token space of any size, and small providers looked up in the roster."""

from __future__ import annotations

import random
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from matchhub.matching import engine as engine_module
from matchhub.matching.engine import MatchEngine, Source

_random = random.Random(18)
_UNIFORM = [_random.randbytes(16) for _ in range(30)]
# Ten more whose high halves repeat ten of those (different low halves), and two at the ends
# of token space.
TOKENS = [
    *_UNIFORM,
    *(token[:8] + _random.randbytes(8) for token in _UNIFORM[:10]),
    bytes(16),
    b"\xff" * 16,
]


@st.composite
def worlds(
    draw: st.DrawFn,
) -> tuple[list[bytes], list[int], tuple[int, int], list[tuple[Source, list[bytes]]]]:
    roster = draw(st.lists(st.sampled_from(TOKENS), max_size=30))
    span = draw(st.sampled_from([len(roster), 2 * len(roster), 10_000]))
    numbers = st.integers(0, max(span - 1, 0))
    ordinals = draw(st.lists(numbers, min_size=len(roster), max_size=len(roster), unique=True))
    slice_tokens = draw(st.sampled_from([1, 2, 5, 1 << 20]))
    search_ratio = draw(st.sampled_from([1, 3, 32]))
    count = draw(st.integers(0, 140))
    flags = [f"f{n}" for n in range(draw(st.integers(1, 5)))]
    kinds = ["bank", "pension", "traffic"]
    sources = [
        (
            Source(100 + n, draw(st.sampled_from(flags)), draw(st.sampled_from(kinds))),
            draw(st.lists(st.sampled_from(TOKENS), max_size=8)),
        )
        for n in range(count)
    ]
    return roster, ordinals, (slice_tokens, search_ratio), sources


@settings(max_examples=150, deadline=None)
@given(worlds())
def test_match_equals_the_reference(
    world: tuple[list[bytes], list[int], tuple[int, int], list[tuple[Source, list[bytes]]]],
) -> None:
    roster, ordinals, (slice_tokens, search_ratio), sources = world
    engine = MatchEngine(threads=2)
    engine.load_tokens(1, b"".join(roster), np.asarray(ordinals, dtype=np.int32))
    for source, tokens in sources:
        engine.load_tokens(source.snapshot_id, b"".join(tokens))
    with (
        mock.patch.object(engine_module, "SLICE_TOKENS", slice_tokens),
        mock.patch.object(engine_module, "SEARCH_RATIO", search_ratio),
    ):
        outcome = engine.match(1, [s for s, _ in sources])

    first: dict[bytes, int] = {}  # a token on the roster twice counts at its lowest ordinal
    for ordinal, token in zip(ordinals, roster, strict=True):
        first[token] = min(ordinal, first.get(token, ordinal))
    expected: dict[int, list[int]] = {}
    for token, ordinal in first.items():
        held = [i for i, (_, tokens) in enumerate(sources) if token in tokens]
        if held:
            expected[ordinal] = held
    ordered = sorted(expected)
    assert outcome.roster_size == len(first)
    assert outcome.ordinals.tolist() == ordered
    assert list(outcome.sources) == [",".join(map(str, expected[o])) for o in ordered]
    per_flag: dict[str, int] = {}
    per_source: dict[str, int] = {}
    for held in expected.values():
        for flag in {sources[i][0].flag for i in held}:
            per_flag[flag] = per_flag.get(flag, 0) + 1
        for kind in {sources[i][0].kind for i in held}:
            per_source[kind] = per_source.get(kind, 0) + 1
    assert outcome.per_flag == per_flag
    assert outcome.per_source == per_source
