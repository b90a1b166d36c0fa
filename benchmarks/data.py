"""Benchmark data, made once per size and kept in memory: random 32-byte wire tokens (the broker
cannot tell them from HMAC outputs), and 12-digit identifiers for the whole-path figure. Chunks
are built straight from the token arrays in the compact wire format; nothing goes through CSV."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import httpx
import numpy as np

from matchhub.agency.connector.push import Chunk, PushClient, PushResult
from matchhub.protocol.wire import COMPACT, WIRE_TOKEN_BYTES

# One provider per kind, each asserting one flag of the seeded catalogue.
PROVIDERS: tuple[tuple[str, str, str], ...] = (
    ("rafidain", "bank", "bank.large_loan"),
    ("pensions", "pension", "pension.recipient"),
    ("traffic", "traffic", "traffic.vehicle_owner"),
    ("trade", "trade", "trade.fuel_station_owner"),
    ("moe", "education", "education.employee"),
    ("mohe", "higher_education", "higher_education.employee"),
)
PURPOSE = "eligibility_review"


def random_tokens(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` random wire tokens as a (count, 32) uint8 array."""
    return np.frombuffer(rng.bytes(count * WIRE_TOKEN_BYTES), dtype=np.uint8).reshape(
        count, WIRE_TOKEN_BYTES
    )


def hex_tokens(tokens: np.ndarray) -> list[str]:
    return [bytes(row).hex() for row in tokens]


def compact_body(tokens: np.ndarray, flagged: bool) -> bytes:
    """Rows of the compact format: the 32 token bytes, then (for a one-flag snapshot) one byte
    with bit 0 set."""
    if not flagged:
        return np.ascontiguousarray(tokens).tobytes()
    rows = np.empty((len(tokens), WIRE_TOKEN_BYTES + 1), dtype=np.uint8)
    rows[:, :WIRE_TOKEN_BYTES] = tokens
    rows[:, WIRE_TOKEN_BYTES] = 1
    return rows.tobytes()


def chunks(tokens: np.ndarray, flagged: bool, chunk_rows: int) -> Iterator[Chunk]:
    for seq, start in enumerate(range(0, len(tokens), chunk_rows)):
        part = tokens[start : start + chunk_rows]
        yield Chunk(seq, compact_body(part, flagged), len(part))


def push_tokens(
    client: httpx.Client,
    *,
    key_version: str,
    tokens: np.ndarray,
    flags: Sequence[str],
    chunk_rows: int,
) -> PushResult:
    """Open, send every chunk with the push client, commit (``flags`` empty: a roster)."""
    return push_chunks(
        client,
        key_version=key_version,
        rows=len(tokens),
        flags=flags,
        chunks=lambda: chunks(tokens, bool(flags), chunk_rows),
    )


def push_chunks(
    client: httpx.Client,
    *,
    key_version: str,
    rows: int,
    flags: Sequence[str],
    chunks: Callable[[], Iterator[Chunk]],
) -> PushResult:
    """Open, send the compact chunks ``chunks`` makes with the push client (which makes each
    while the one before is sent), commit."""
    pusher = PushClient(client)
    kind = "flags" if flags else "roster"
    started = time.perf_counter()
    upload = pusher.open(kind, key_version, list(flags), rows)
    result = pusher.send(upload["id"], chunks, COMPACT, rows)
    if result.upload.get("state") != "committed":
        raise RuntimeError(f"the upload did not commit: {result.upload}")
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class BulkData:
    """A roster and six providers' snapshots; each provider holds a share of the roster."""

    roster: np.ndarray  # (n, 32) wire tokens
    providers: list[np.ndarray]  # one (m, 32) array per entry of PROVIDERS
    flagged: int  # roster members found in at least one provider

    @property
    def partner_rows(self) -> int:
        return sum(len(p) for p in self.providers)


def make_bulk(roster: int, partner_rows: int, share: float, seed: int = 7) -> BulkData:
    """Each provider holds ``share`` of the roster (drawn independently) and random others."""
    rng = np.random.default_rng(seed)
    roster_tokens = random_tokens(rng, roster)
    sizes = [partner_rows // len(PROVIDERS)] * len(PROVIDERS)
    sizes[0] += partner_rows - sum(sizes)
    providers: list[np.ndarray] = []
    hit = np.zeros(roster, dtype=bool)
    for size in sizes:
        overlap = min(size, int(roster * share))
        members = rng.choice(roster, size=overlap, replace=False)
        hit[members] = True
        rows = np.concatenate([roster_tokens[members], random_tokens(rng, size - overlap)])
        providers.append(rows[rng.permutation(len(rows))])
    return BulkData(roster_tokens, providers, int(hit.sum()))


def lookup_bodies(
    data: BulkData, per_lookup: int, count: int, seed: int = 11
) -> list[tuple[bytes, int]]:
    """Pre-encoded lookup request bodies (so the client spends no time on JSON), each with
    ``per_lookup`` roster tokens: about one in five also off the roster."""
    rng = np.random.default_rng(seed)
    bodies: list[tuple[bytes, int]] = []
    for _ in range(count):
        picks = data.roster[rng.integers(0, len(data.roster), per_lookup)]
        strangers = random_tokens(rng, max(1, per_lookup // 5))
        tokens = hex_tokens(np.concatenate([picks[: per_lookup - len(strangers)], strangers]))
        body = json.dumps({"purpose": PURPOSE, "tokens": tokens}, separators=(",", ":"))
        bodies.append((body.encode(), len(tokens)))
    return bodies


@dataclass
class PathData:
    """Identifiers for the whole-path figure: a roster and one provider's population."""

    roster_ids: list[str]
    partner_ids: list[str]
    overlap: int

    @cached_property
    def expected(self) -> int:
        return len(set(self.roster_ids) & set(self.partner_ids))


def make_path(roster: int, partner: int, share: float = 0.2, seed: int = 13) -> PathData:
    """Distinct valid 12-digit identifiers; ``share`` of the roster is in the provider's set."""
    rng = np.random.default_rng(seed)
    want = roster + partner
    values = np.unique(rng.integers(10**11, 10**12, size=int(want * 1.01) + 16))
    while len(values) < want:  # pragma: no cover (a collision-heavy draw)
        values = np.unique(np.concatenate([values, rng.integers(10**11, 10**12, size=want)]))
    values = values[rng.permutation(len(values))][:want]
    ids = [str(v) for v in values.tolist()]
    # A run of one repeated digit is a placeholder, refused by the scheme: swap any out.
    ids = [i if i.count(i[0]) != len(i) else str(10**11 + n) for n, i in enumerate(ids)]
    overlap = int(roster * share)
    roster_ids = ids[:roster]
    partner_ids = roster_ids[:overlap] + ids[roster : roster + partner - overlap]
    order = rng.permutation(len(partner_ids)).tolist()
    return PathData(roster_ids, [partner_ids[i] for i in order], overlap)
