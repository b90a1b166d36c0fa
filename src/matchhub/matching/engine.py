"""The collective match: a roster's stored tokens joined with every current provider
snapshot's, in an in-process DuckDB.

Why DuckDB: the collective match is one hash join of a roster (millions of tokens) against every
provider's current snapshots (tens of millions). PostgreSQL's hash join of the same tokens was
tens of times slower than DuckDB's vectorised in-memory join (docs/benchmarks.md has the
figures). A token is joined as its two 64-bit halves, which hash and compare as machine words.

The engine copies nothing: it holds each snapshot as numpy arrays, normally the read-only maps
of its segment file (kit/segments.py), which DuckDB scans in place. Every process on the host
that maps a segment shares its pages, and a process that starts with segments on disk is ready
without reading the database. Only the join's hash table, built on the roster side, is the
process's own, and only while a match runs: each match has a DuckDB of its own, closed at the
end, because a DuckDB kept open holds on to the memory of its last join (170 MiB after a join
of a 7M-row roster, measured), which an idle worker would otherwise carry from job to job.

Snapshots are dropped when no longer current; a job names exactly the snapshot ids it runs on,
so a snapshot replaced mid-way cannot leak into a job that started before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np

from matchhub.kit.segments import halves, sort_order

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
    hi: np.ndarray
    lo: np.ndarray
    ordinals: np.ndarray | None = None  # a roster's, one per distinct token


def _distinct_roster(hi: np.ndarray, lo: np.ndarray, ordinals: np.ndarray) -> _Columns:
    """A token on the roster twice counts once, at its first ordinal. Segments come sorted by
    (token, ordinal) and almost never hold a token twice: then their maps are used as they
    are; otherwise (or unsorted input) a private copy of the distinct ones is made."""
    ordinals = np.asarray(ordinals)
    n = len(hi)
    if n > 1:
        ascending = bool(np.all(hi[1:] >= hi[:-1]))
        if not ascending:
            order = sort_order(hi, lo, ordinals)
            hi, lo, ordinals = hi[order], lo[order], ordinals[order]
        repeated = (hi[1:] == hi[:-1]) & (lo[1:] == lo[:-1])
        if bool(np.any(repeated)):
            order = sort_order(hi, lo, ordinals)  # ties by ordinal, first kept
            hi, lo, ordinals = hi[order], lo[order], ordinals[order]
            first = np.concatenate(([True], ~((hi[1:] == hi[:-1]) & (lo[1:] == lo[:-1]))))
            hi, lo, ordinals = hi[first], lo[first], ordinals[first]
    return _Columns(hi, lo, ordinals)


class MatchEngine:
    def __init__(self, threads: int | None = None) -> None:
        self._config: dict[str, str | bool | int | float | list[str]] = (
            {"threads": int(threads)} if threads else {}
        )
        self._held: dict[int, _Columns] = {}
        self._lock = threading.Lock()

    def loaded(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._held)

    def load_provider(self, snapshot_id: int, hi: np.ndarray, lo: np.ndarray) -> None:
        """A provider snapshot's stored tokens as their high and low 64-bit halves (a
        segment's maps; :func:`matchhub.kit.segments.halves` makes them from bytes)."""
        if len(hi) != len(lo):
            raise ValueError("one low half per high half")
        with self._lock:
            self._held.setdefault(snapshot_id, _Columns(hi, lo))

    def load_roster(
        self, snapshot_id: int, ordinals: Sequence[int] | np.ndarray, hi: np.ndarray, lo: np.ndarray
    ) -> None:
        if not (len(ordinals) == len(hi) == len(lo)):
            raise ValueError("one ordinal per token")
        columns = _distinct_roster(hi, lo, np.asarray(ordinals, dtype=np.int32))
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

        One join and one aggregate in the engine: each flagged ordinal gets a bitmask of the
        sources holding it (64 sources a word, as many words as needed). The counts and the
        "0,3" lists come from the distinct masks (a handful, however many beneficiaries share
        each), so nothing in Python runs once per row."""
        with self._lock:
            loaded = dict(self._held)
        missing = ({roster_id} | {s.snapshot_id for s in sources}) - set(loaded)
        if missing:
            raise KeyError(f"snapshots not loaded: {sorted(missing)}")
        roster = loaded[roster_id]
        words = max(1, -(-len(sources) // 64))

        # Source i is bit i % 64 of word i // 64, a constant column of its rows (constants
        # cost the scan nothing); the only text put in the query is names and integers.
        def bits(i: int) -> str:
            return ", ".join(
                f"{(1 << (i % 64)) if i // 64 == w else 0}::UBIGINT AS b{w}" for w in range(words)
            )

        masks = ", ".join(f"bit_or(p.b{w}) AS m{w}" for w in range(words))
        union = " UNION ALL ".join(
            f"SELECT hi, lo, {bits(i)} FROM p{i}"  # noqa: S608 (see above)
            for i in range(len(sources))
        ) or (
            "SELECT 0::UBIGINT AS hi, 0::UBIGINT AS lo, "
            + ", ".join(f"0::UBIGINT AS b{w}" for w in range(words))
            + " WHERE false"
        )
        query = f"""
            SELECT r.ordinal, {masks}
            FROM roster r
            JOIN ({union}) p ON p.hi = r.hi AND p.lo = r.lo
            GROUP BY r.ordinal
        """  # noqa: S608 (see above)
        db = duckdb.connect(":memory:", config=self._config)
        try:
            # Registered arrays are scanned where they are: a segment's pages, not a copy.
            db.register("roster", {"ordinal": roster.ordinals, "hi": roster.hi, "lo": roster.lo})
            for i, source in enumerate(sources):
                columns = loaded[source.snapshot_id]
                db.register(f"p{i}", {"hi": columns.hi, "lo": columns.lo})
            result = db.execute(query).fetchnumpy()
        finally:
            db.close()
        ordinals, mask = _in_roster_order(
            np.asarray(result["ordinal"], dtype=np.int32),
            np.stack([np.asarray(result[f"m{w}"], dtype=np.uint64) for w in range(words)], 1),
        )
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
