"""The match engine at the edges a broker meets that the property test does not draw: the
read-only maps of real segment files, ordinals at the top of int32, many sources with a
shared token, a provider's snapshot named as the roster, two matches at once on one engine,
and how many threads a match may start on a host that gives the process fewer cores."""

from __future__ import annotations

import threading
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from matchhub.kit.segments import Segment, SegmentId, SegmentKind, open_segment, write_segment
from matchhub.matching import engine as engine_module
from matchhub.matching.engine import MatchEngine, MatchOutcome, Source

INT32_MAX = 2**31 - 1


def _tokens(seed: int, n: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [bytes(row) for row in rng.integers(0, 256, size=(n, 16), dtype=np.uint8)]


def _segment(
    folder: Path, snapshot_id: int, tokens: list[bytes], ordinals: list[int] | None
) -> Segment:
    kind = SegmentKind.flag if ordinals is None else SegmentKind.roster
    ident = SegmentId(snapshot_id=snapshot_id, kind=kind, rows=len(tokens), upload="0" * 32)
    ords = None if ordinals is None else np.asarray(ordinals, dtype=np.int32)
    path = write_segment(folder, ident, b"".join(tokens), ords)
    return open_segment(path, ident)


def test_read_only_segment_maps_and_int32_ordinals(tmp_path: Path) -> None:
    roster = _tokens(1, 3000)
    roster[7] = roster[8]  # the same beneficiary twice: the lower ordinal counts
    roster[9] = roster[10][:8] + bytes(8)  # a high half shared with another roster token
    ordinals = [INT32_MAX - 3000 + i for i in range(3000)]
    shared = roster[:40]
    provider = [*shared, shared[0], *_tokens(2, 5000), bytes(16), b"\xff" * 16]
    r = _segment(tmp_path, 1, roster, ordinals)
    p = _segment(tmp_path, 2, provider, None)
    assert not r.hi.flags.writeable
    assert not p.hi.flags.writeable
    assert r.ordinals is not None
    engine = MatchEngine(threads=2)
    engine.load_roster(1, r.ordinals, r.hi, r.lo)
    engine.load_provider(2, p.hi, p.lo)
    with mock.patch.object(engine_module, "SLICE_TOKENS", 64):
        outcome = engine.match(1, [Source(2, "bank.large_loan", "bank")])
    first = {t: min(o for o, u in zip(ordinals, roster, strict=True) if u == t) for t in shared}
    expected = sorted(set(first.values()))
    assert outcome.ordinals.dtype == np.int32
    assert outcome.ordinals.tolist() == expected
    assert len(expected) == 39  # roster[7] == roster[8]
    assert outcome.per_flag == {"bank.large_loan": 39}


@pytest.mark.parametrize("count", [64, 65, 128, 129, 200])
def test_a_token_every_source_holds(count: int) -> None:
    token, other = _tokens(3, 2)
    engine = MatchEngine(threads=2)
    engine.load_tokens(1, token + other, [5, 0])
    sources = [Source(100 + i, f"f{i % 3}", "bank") for i in range(count)]
    for source in sources:
        engine.load_tokens(source.snapshot_id, token)
    outcome = engine.match(1, sources)
    assert outcome.ordinals.tolist() == [5]
    assert outcome.sources.tolist() == [",".join(map(str, range(count)))]
    assert outcome.per_flag == {f"f{i}": 1 for i in range(min(count, 3))}


def test_a_provider_snapshot_is_not_a_roster() -> None:
    engine = MatchEngine(threads=1)
    engine.load_tokens(2, b"".join(_tokens(4, 3)))
    with pytest.raises(ValueError, match="not a roster"):
        engine.match(2, [])


def test_two_matches_at_once_on_one_engine() -> None:
    roster = _tokens(5, 20_000)
    engine = MatchEngine(threads=2)
    engine.load_tokens(1, b"".join(roster), np.arange(len(roster)))
    engine.load_tokens(2, b"".join(roster[::3]))
    engine.load_tokens(3, b"".join(roster[::5]))
    sources = [Source(2, "a", "bank"), Source(3, "b", "pension")]
    alone = engine.match(1, sources)
    outcomes: list[MatchOutcome] = []

    def run() -> None:
        outcomes.extend(engine.match(1, sources) for _ in range(3))

    threads = [threading.Thread(target=run) for _ in range(3)]
    with mock.patch.object(engine_module, "SLICE_TOKENS", 512):  # many slices each
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(outcomes) == 9
    for outcome in outcomes:
        assert outcome.ordinals.tolist() == alone.ordinals.tolist()
        assert outcome.sources.tolist() == alone.sources.tolist()


@pytest.mark.parametrize(
    ("affinity", "cpu_max", "threads"),
    [
        ({0}, "max 100000", 1),  # pinned to one core (cpuset, taskset)
        (set(range(8)), "max 100000", 8),
        (set(range(8)), "250000 100000", 2),  # a container's or a unit's CPU quota
        (set(range(8)), "50000 100000", 1),  # half a core: one thread still
        (set(range(8)), None, 8),  # no cgroup v2 file
    ],
)
def test_threads_follow_the_cores_the_process_may_use(
    tmp_path: Path, affinity: set[int], cpu_max: str | None, threads: int
) -> None:
    """A container or a systemd unit that gives the broker fewer cores than the host has must
    not get a pool sized for the whole host."""
    quota = tmp_path / "cpu.max"
    if cpu_max is not None:
        quota.write_text(cpu_max + "\n")
    with (
        mock.patch("os.cpu_count", return_value=64),
        mock.patch("os.sched_getaffinity", return_value=affinity, create=True),
        mock.patch.object(engine_module, "CPU_MAX", quota),
    ):
        assert engine_module.usable_cores() == threads
        assert MatchEngine().threads == threads
