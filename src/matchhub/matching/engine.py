"""An in-process DuckDB that holds the re-keyed tokens of the snapshots jobs need.

Why DuckDB: the collective match is one hash join of a roster (millions of tokens) against every
provider's current snapshots (tens of millions). PostgreSQL's hash join of the same tokens was
tens of times slower than DuckDB's vectorised in-memory join (docs/benchmarks.md has the
figures). Tokens are 16 bytes: held as one UHUGEINT column, they hash and compare as machine
words.

Snapshots are loaded once per process (from SQL, by the caller) and dropped when no longer
current; a job names exactly the snapshot ids it runs on, so a snapshot replaced mid-way cannot
leak into a job that started before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np

TOKEN_BYTES = 16


def _columns(tokens: bytes) -> tuple[np.ndarray, np.ndarray]:
    if len(tokens) % TOKEN_BYTES:
        raise ValueError("token data is not a whole number of 16-byte tokens")
    words = np.frombuffer(tokens, dtype=">u8").reshape(-1, 2).astype(np.uint64)
    return np.ascontiguousarray(words[:, 0]), np.ascontiguousarray(words[:, 1])


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


class MatchEngine:
    def __init__(self, threads: int | None = None) -> None:
        self._db = duckdb.connect(":memory:")
        if threads:
            self._db.execute(f"SET threads = {int(threads)}")
        self._db.execute("CREATE TABLE provider (snapshot_id INTEGER, k UHUGEINT)")
        self._db.execute("CREATE TABLE roster (snapshot_id INTEGER, ordinal INTEGER, k UHUGEINT)")
        self._loaded: set[int] = set()
        self._lock = threading.Lock()

    def loaded(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._loaded)

    def load_provider(self, snapshot_id: int, tokens: bytes) -> None:
        """``tokens``: the snapshot's stored tokens concatenated (16 bytes each)."""
        hi, lo = _columns(tokens)
        with self._lock:
            if snapshot_id in self._loaded:
                return
            cursor = self._db.cursor()
            cursor.register("batch", {"hi": hi, "lo": lo})
            cursor.execute(
                "INSERT INTO provider SELECT ?, (hi::UHUGEINT << 64) | lo::UHUGEINT FROM batch",
                [snapshot_id],
            )
            cursor.unregister("batch")
            self._loaded.add(snapshot_id)

    def load_roster(
        self, snapshot_id: int, ordinals: Sequence[int] | np.ndarray, tokens: bytes
    ) -> None:
        hi, lo = _columns(tokens)
        ords = np.asarray(ordinals, dtype=np.int32)
        if len(ords) != len(hi):
            raise ValueError("one ordinal per token")
        with self._lock:
            if snapshot_id in self._loaded:
                return
            cursor = self._db.cursor()
            cursor.register("batch", {"o": ords, "hi": hi, "lo": lo})
            # A token on the roster twice counts once, at its first ordinal.
            cursor.execute(
                """
                INSERT INTO roster
                SELECT ?, min(o), (hi::UHUGEINT << 64) | lo::UHUGEINT AS k FROM batch GROUP BY k
                """,
                [snapshot_id],
            )
            cursor.unregister("batch")
            self._loaded.add(snapshot_id)

    def drop(self, snapshot_ids: Iterable[int]) -> None:
        ids = [int(i) for i in snapshot_ids]
        if not ids:
            return
        with self._lock:
            for snapshot_id in ids:
                self._db.execute("DELETE FROM provider WHERE snapshot_id = ?", [snapshot_id])
                self._db.execute("DELETE FROM roster WHERE snapshot_id = ?", [snapshot_id])
            self._loaded.difference_update(ids)

    def match(self, roster_id: int, sources: Sequence[Source]) -> MatchOutcome:
        """Every roster token found in any of ``sources``, with the indexes of the sources that
        hold it, and the counts per flag and per source kind.

        One join and one aggregate in the engine: each flagged ordinal gets a bitmask of the
        sources holding it (64 sources a word, as many words as needed). The counts and the
        "0,3" lists come from the distinct masks (a handful, however many beneficiaries share
        each), so nothing in Python runs once per row."""
        missing = ({roster_id} | {s.snapshot_id for s in sources}) - self.loaded()
        if missing:
            raise KeyError(f"snapshots not loaded: {sorted(missing)}")
        words = max(1, -(-len(sources) // 64))
        index = np.arange(len(sources))
        bits = {  # source i is bit i % 64 of word i // 64
            f"b{w}": np.where(index // 64 == w, np.left_shift(1, index % 64), 0).astype(np.uint64)
            for w in range(words)
        }
        masks = ", ".join(f"bit_or(s.b{w}) AS m{w}" for w in range(words))
        query = f"""
            SELECT r.ordinal, {masks}
            FROM roster r
            JOIN provider p ON p.k = r.k
            JOIN sources s ON s.snapshot_id = p.snapshot_id
            WHERE r.snapshot_id = ?
            GROUP BY r.ordinal
            ORDER BY r.ordinal
        """  # noqa: S608 (the only text put in is the mask columns, named by integers)
        cursor = self._db.cursor()
        try:
            cursor.register(
                "sources",
                {
                    "snapshot_id": np.asarray([s.snapshot_id for s in sources], dtype=np.int32),
                    **bits,
                },
            )
            size = cursor.execute(
                "SELECT count(*) FROM roster WHERE snapshot_id = ?", [roster_id]
            ).fetchone()
            columns = cursor.execute(query, [roster_id]).fetchnumpy()
            cursor.unregister("sources")
        finally:
            cursor.close()
        ordinals = np.asarray(columns["ordinal"], dtype=np.int32)
        mask = np.stack([np.asarray(columns[f"m{w}"], dtype=np.uint64) for w in range(words)], 1)
        keys = (
            mask[:, 0]
            if words == 1
            else mask.view(np.dtype([(f"w{w}", np.uint64) for w in range(words)])).ravel()
        )
        distinct, which, counts = np.unique(keys, return_inverse=True, return_counts=True)
        labels: list[str] = []
        per_flag: dict[str, int] = {}
        per_source: dict[str, int] = {}
        for key, count in zip(distinct, counts, strict=True):
            row = [int(key)] if words == 1 else [int(w) for w in key]
            held = [i for i in range(len(sources)) if row[i // 64] >> (i % 64) & 1]
            labels.append(",".join(map(str, held)))
            for flag in {sources[i].flag for i in held}:
                per_flag[flag] = per_flag.get(flag, 0) + int(count)
            for kind in {sources[i].kind for i in held}:
                per_source[kind] = per_source.get(kind, 0) + int(count)
        return MatchOutcome(
            roster_size=int(size[0]) if size else 0,
            ordinals=ordinals,
            sources=np.asarray(labels, dtype=object)[np.ravel(which)]
            if labels
            else np.empty(0, dtype=object),
            per_flag=dict(sorted(per_flag.items())),
            per_source=dict(sorted(per_source.items())),
        )
