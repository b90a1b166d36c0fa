"""The collective match: a roster's stored tokens joined with every current provider
snapshot's, as a merge of sorted columns.

Why a merge: the collective match is one join of a roster (millions of tokens) against every
provider's current snapshots (tens of millions), and every snapshot is held as a segment sorted
by token (kit/segments.py). Two sorted columns meet in one linear pass: the two are laid end to
end and sorted stably, which finds them already in two runs and merges them, and a token held
by both sides then stands next to itself. No hash table is built, nothing is copied but the
slice being merged, and the pass is shared by the host's cores a slice of token space at a
time. PostgreSQL's hash join of the same tokens was tens of times slower; DuckDB's in-memory
hash join, the engine before this one, took about twice the time and far more memory
(docs/benchmarks.md has the figures). A token is compared as its two 64-bit halves: the high
half alone finds the candidates (tokens are uniform, so it almost never repeats), the low half
confirms them; where a high half does repeat, a search that walks its run takes over.

The engine copies nothing it holds: each snapshot is numpy arrays, normally the read-only maps
of its segment file, which every process on the host shares; a process that starts with
segments on disk is ready without reading the database. A snapshot loaded from elsewhere that
is not sorted is sorted once, into a copy of its own.

Snapshots are dropped when no longer current; a job names exactly the snapshot ids it runs on,
so a snapshot replaced mid-way cannot leak into a job that started before.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from matchhub.kit.segments import Order, halves, order_of, sort_order

TOKEN_BYTES = 16


def token_bytes(value: int) -> bytes:
    return value.to_bytes(TOKEN_BYTES, "big")


@dataclass(frozen=True)
class Source:
    snapshot_id: int
    flag: str
    kind: str  # the kind of agency that asserts the flag


@dataclass
class MatchOutcome:
    """Columns, not objects: one entry per flagged roster member, in roster order."""

    roster_size: int  # distinct tokens on the roster
    ordinals: np.ndarray  # int32: the roster row the consumer sent each flagged token at
    sources: np.ndarray  # object (str): for each, the indexes of the sources holding it, "0,3"
    per_flag: dict[str, int] = field(default_factory=dict)  # flagged beneficiaries per flag
    per_source: dict[str, int] = field(default_factory=dict)  # ... per asserting agency kind

    @property
    def flagged(self) -> int:
        return len(self.ordinals)


@dataclass(frozen=True)
class _Columns:
    """A snapshot's tokens sorted by (high, low), as they are in a segment."""

    hi: np.ndarray
    lo: np.ndarray
    ordinals: np.ndarray | None = None  # a roster's, one per distinct token
    plain: bool = True  # no high half twice: the merge by high half alone is exact


def _provider(hi: np.ndarray, lo: np.ndarray, order: Order | None) -> _Columns:
    """A segment's maps are used as they are; unsorted input is sorted into a copy."""
    order = order or order_of(hi, lo)
    if not order.ascending:
        by = sort_order(hi, lo)
        hi, lo = hi[by], lo[by]
        order = order_of(hi, lo)
    return _Columns(hi, lo, plain=order.plain)


def _distinct_roster(
    hi: np.ndarray, lo: np.ndarray, ordinals: np.ndarray, order: Order | None
) -> _Columns:
    """A token on the roster twice counts once, at its lowest ordinal. Segments come sorted by
    (token, ordinal) and almost never hold a token twice: then their maps are used as they
    are; otherwise (or unsorted input) a private copy of the distinct ones is made."""
    ordinals = np.asarray(ordinals)
    order = order or order_of(hi, lo)
    if not (order.ascending and order.distinct):
        by = sort_order(hi, lo, ordinals)  # ties by ordinal, the first kept
        hi, lo, ordinals = hi[by], lo[by], ordinals[by]
        first = np.concatenate(([True], ~((hi[1:] == hi[:-1]) & (lo[1:] == lo[:-1]))))
        hi, lo, ordinals = hi[first], lo[first], ordinals[first]
        order = order_of(hi, lo)
    return _Columns(hi, lo, ordinals, plain=order.plain)


CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (a cpuset, taskset), capped by a
    cgroup's CPU quota (a container's or a systemd unit's CPUQuota=), not the host's count."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cores = min(cores or 1, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota to read: the affinity stands
    return max(1, cores or 1)


class MatchEngine:
    def __init__(self, threads: int | None = None) -> None:
        self.threads = max(1, int(threads or usable_cores()))
        self._held: dict[int, _Columns] = {}
        self._lock = threading.Lock()

    def loaded(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._held)

    def load_provider(
        self, snapshot_id: int, hi: np.ndarray, lo: np.ndarray, order: Order | None = None
    ) -> None:
        """A provider snapshot's stored tokens as their high and low 64-bit halves (a
        segment's maps, with the ``order`` its check found; :func:`matchhub.kit.segments.halves`
        makes them from bytes, and their order is then checked here)."""
        if len(hi) != len(lo):
            raise ValueError("one low half per high half")
        with self._lock:
            if snapshot_id in self._held:
                return
        columns = _provider(hi, lo, order)
        with self._lock:
            self._held.setdefault(snapshot_id, columns)

    def load_roster(
        self,
        snapshot_id: int,
        ordinals: Sequence[int] | np.ndarray,
        hi: np.ndarray,
        lo: np.ndarray,
        order: Order | None = None,
    ) -> None:
        if not (len(ordinals) == len(hi) == len(lo)):
            raise ValueError("one ordinal per token")
        columns = _distinct_roster(hi, lo, np.asarray(ordinals, dtype=np.int32), order)
        with self._lock:
            self._held.setdefault(snapshot_id, columns)

    def load_tokens(
        self, snapshot_id: int, tokens: bytes, ordinals: Sequence[int] | np.ndarray | None = None
    ) -> None:
        """The same from stored tokens concatenated (16 bytes each): a provider's, or with
        ``ordinals`` a roster's."""
        hi, lo = halves(tokens)
        if ordinals is None:
            self.load_provider(snapshot_id, hi, lo)
        else:
            self.load_roster(snapshot_id, ordinals, hi, lo)

    def drop(self, snapshot_ids: Iterable[int]) -> None:
        with self._lock:
            for snapshot_id in snapshot_ids:
                self._held.pop(int(snapshot_id), None)

    def match(self, roster_id: int, sources: Sequence[Source]) -> MatchOutcome:
        """Every roster token found in any of ``sources``, with the indexes of the sources that
        hold it, and the counts per flag and per source kind.

        One merge of the roster with each source: each roster token gets a bitmask of the
        sources holding it (64 sources a word, as many words as needed). The counts and the
        "0,3" lists come from the distinct masks (a handful, however many beneficiaries share
        each), so nothing in Python runs once per row."""
        with self._lock:
            loaded = dict(self._held)
        missing = ({roster_id} | {s.snapshot_id for s in sources}) - set(loaded)
        if missing:
            raise KeyError(f"snapshots not loaded: {sorted(missing)}")
        roster = loaded[roster_id]
        if roster.ordinals is None:
            raise ValueError(f"snapshot {roster_id} was loaded as a provider's, not a roster")
        words = max(1, -(-len(sources) // 64))
        # Source i is bit i % 64 of word i // 64 of each roster token's mask. The merges run
        # a source's slice of token space at a time, spread over the host's cores (numpy
        # releases the interpreter for them); the masks are set here, one source at a time.
        tasks = [
            (i, part)
            for i, source in enumerate(sources)
            for part in _slices(roster, loaded[source.snapshot_id])
        ]
        masks = np.zeros((len(roster.hi), words), dtype=np.uint64)

        def found(task: tuple[int, _Slice]) -> np.ndarray:
            return _found(roster, loaded[sources[task[0]].snapshot_id], task[1])

        with ThreadPoolExecutor(min(self.threads, max(1, len(tasks)))) as pool:
            for (i, _), rows in zip(tasks, pool.map(found, tasks), strict=True):
                masks[rows, i // 64] |= np.uint64(1 << (i % 64))
        flagged = np.flatnonzero(masks.any(axis=1))
        ordinals, mask = _in_roster_order(roster.ordinals[flagged], masks[flagged])
        distinct, which, counts = _distinct_masks(mask)
        labels: list[str] = []
        per_flag: dict[str, int] = {}
        per_source: dict[str, int] = {}
        for key, count in zip(distinct, counts, strict=True):
            held = [i for i in range(len(sources)) if int(key[i // 64]) >> (i % 64) & 1]
            labels.append(",".join(map(str, held)))
            for flag in {sources[i].flag for i in held}:
                per_flag[flag] = per_flag.get(flag, 0) + int(count)
            for kind in {sources[i].kind for i in held}:
                per_source[kind] = per_source.get(kind, 0) + int(count)
        return MatchOutcome(
            roster_size=len(roster.hi),
            ordinals=ordinals,
            sources=np.asarray(labels, dtype=object)[which]
            if labels
            else np.empty(0, dtype=object),
            per_flag=dict(sorted(per_flag.items())),
            per_source=dict(sorted(per_source.items())),
        )


SLICE_TOKENS = 1 << 20
"""Tokens merged at a time (both sides): 8 MiB of high halves, a cache's worth, not a copy of
a whole snapshot per core."""

_Slice = tuple[int, int, int, int]  # roster rows [a, b) and provider rows [c, d)


def _slices(roster: _Columns, provider: _Columns) -> list[_Slice]:
    """The two sides cut at the same points of token space, so that each slice of the roster
    meets only the slice of the provider that can hold its tokens. A high half's run is never
    cut (it sits at one point of the space); tokens are uniform, so slices come out even."""
    if SEARCH_RATIO * len(provider.hi) <= len(roster.hi):
        return [(0, len(roster.hi), 0, len(provider.hi))]  # looked up whole: nothing to cut
    parts = max(1, (len(roster.hi) + len(provider.hi)) // SLICE_TOKENS)
    edges = np.arange(1, parts, dtype=np.uint64) * np.uint64(((1 << 64) - 1) // parts)
    r = [0, *np.searchsorted(roster.hi, edges).tolist(), len(roster.hi)]
    p = [0, *np.searchsorted(provider.hi, edges).tolist(), len(provider.hi)]
    return [(r[k], r[k + 1], p[k], p[k + 1]) for k in range(parts)]


SEARCH_RATIO = 32
"""A provider's slice this many times smaller than the roster's is looked up in it token by
token (a binary search each) rather than merged with it, which would pass over the whole
roster slice for a handful of tokens: most providers hold thousands, a roster millions."""


def _found(roster: _Columns, provider: _Columns, part: _Slice) -> np.ndarray:
    """The roster rows of ``part`` whose token the provider holds."""
    a, b, c, d = part
    if a == b or c == d:
        return np.empty(0, dtype=np.intp)
    rhi, rlo, phi, plo = roster.hi[a:b], roster.lo[a:b], provider.hi[c:d], provider.lo[c:d]
    if SEARCH_RATIO * (d - c) <= b - a:
        rows = _searched(phi, plo, rhi, rlo)[1]
    elif roster.plain and provider.plain:
        rows = _merged(rhi, rlo, phi, plo)
    else:
        rows = _searched(rhi, rlo, phi, plo)[0]
    return rows + a


def _merged(rhi: np.ndarray, rlo: np.ndarray, phi: np.ndarray, plo: np.ndarray) -> np.ndarray:
    """Neither side holds a high half twice: laid end to end and sorted stably (two sorted
    runs, merged in one pass), a high half both hold is the only kind that appears twice in a
    row; its low halves decide."""
    both = np.concatenate((rhi, phi))
    both.sort(kind="stable")
    shared = both[1:][both[1:] == both[:-1]]
    rows = np.searchsorted(rhi, shared)
    found: np.ndarray = rows[rlo[rows] == plo[np.searchsorted(phi, shared)]]
    return found


def _searched(
    khi: np.ndarray, klo: np.ndarray, hi: np.ndarray, lo: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each token of the keys (any order) looked for in the sorted column (``hi``, ``lo``)
    along the run of its high half, a step at a time (a run is one token, rarely two): the
    key's row and the column's row of every token found. Exact whether or not high halves
    repeat, on either side."""
    at = np.searchsorted(hi, khi)  # the first token with this high half or above
    rows = np.arange(len(khi))
    keys, found = [], []
    while len(rows):
        inside = at < len(hi)
        rows, at = rows[inside], at[inside]
        same = hi[at] == khi[rows]
        rows, at = rows[same], at[same]
        hit = lo[at] == klo[rows]
        keys.append(rows[hit])
        found.append(at[hit])
        rows, at = rows[~hit], at[~hit] + 1
    return np.concatenate(keys), np.concatenate(found)


def _in_roster_order(ordinals: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flagged ordinals ascending, each with its mask row. Ordinals are distinct row
    positions, so a counting pass puts them in order in linear time, cheaper than a sort of
    millions in the join (or here) when they span no more than a few times their number."""
    if len(ordinals) == 0:
        return ordinals, mask
    low, high = int(ordinals.min()), int(ordinals.max())
    if high - low >= 8 * len(ordinals):
        order = np.argsort(ordinals, kind="stable")
        return ordinals[order], mask[order]
    present = np.zeros(high - low + 1, dtype=bool)
    present[ordinals - low] = True
    rank = np.cumsum(present, dtype=np.int64) - 1  # each present position's place in order
    order = np.empty(len(ordinals), dtype=np.int64)
    order[rank[ordinals - low]] = np.arange(len(ordinals))
    return ordinals[order], mask[order]


def _distinct_masks(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct rows of ``mask`` (one 64-bit word a column), which of them each row is,
    and how many rows each is. With a single word of small values (a few sources: the usual
    case) that is a count per value, linear; otherwise a sort."""
    if mask.shape[1] == 1 and len(mask) and int(mask.max()) < 1 << 16:
        values = mask[:, 0].astype(np.intp)
        counts = np.bincount(values)
        distinct = np.flatnonzero(counts)
        index = np.zeros(len(counts), dtype=np.intp)
        index[distinct] = np.arange(len(distinct))
        return distinct.astype(np.uint64)[:, None], index[values], counts[distinct]
    keys = np.ascontiguousarray(mask).view(np.dtype((np.void, 8 * mask.shape[1]))).ravel()
    _, first, which, counts = np.unique(
        keys, return_index=True, return_inverse=True, return_counts=True
    )
    return mask[first], np.ravel(which), counts
