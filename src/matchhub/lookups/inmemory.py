"""The in-memory view lookups answer from, and the proof that it is current.

A case worker's lookup asks about a few tokens; answered from SQL it costs a handful of
database round trips (the certificate, the grants, roster membership and flags across every
provider's partition), and on a 2-core broker those round trips, not the work, are most of
its cost. The view holds what a lookup reads, loaded in one consistent read: the registry's
credentials, the live grants, the purposes, and the stored tokens of every current roster and
flag snapshot as sorted 16-byte arrays (stored tokens are one-way re-keyed values; the view
holds nothing the database does not).

The proof is the view generation (lookups/models.py): a counter that database triggers bump in
the same transaction as any change a lookup depends on. The view records the generation it was
loaded at. An answer computed from the view goes out only after its audit entry has committed
in a batch that read the database's generation and found it unchanged (web/writer.py);
otherwise the entry is refused and the lookup is answered again from SQL. So a revocation, a
withdrawn grant or a replaced snapshot reaches the very next answer that leaves the broker,
exactly as it did when every lookup read the database; the view only saves the reads.

Memory: the token arrays are the maps of the snapshots' segment files (kit/segments.py), shared
with every other process of the host through the page cache; bounded by
``Settings.lookup_view_max_rows``, past which there is no view and lookups read SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from matchhub.identity.repository import Credential

TOKEN_BYTES = 16


@dataclass(frozen=True)
class Answers:
    """What a lookup learns about its tokens (stored form), from the view or from SQL."""

    roster_id: int | None  # None: the caller has no current roster
    key_version: str | None
    members: frozenset[bytes]  # the tokens asked about that are on the roster
    flags: list[tuple[bytes, str, str, date]]  # (member, flag code, asserting kind, as of)


Queries = tuple[np.ndarray, np.ndarray]  # the high and low 64 bits of each token asked about


def _halves(tokens: bytes) -> Queries:
    # Big-endian, so the numeric order of the halves is the byte order of the token.
    words = np.frombuffer(tokens, dtype=">u8").reshape(-1, 2).astype(np.uint64)
    return np.ascontiguousarray(words[:, 0]), np.ascontiguousarray(words[:, 1])


class TokenSet:
    """Stored tokens, for membership tests by binary search over their high 64 bits (native
    integer compares, several times faster than numpy's byte-string search), the low 64 bits
    deciding. Tokens that share their high half, rare but possible, are checked one by one."""

    def __init__(self, tokens: bytes) -> None:
        if len(tokens) % TOKEN_BYTES:
            raise ValueError("stored tokens are 16 bytes each")
        hi, lo = _halves(tokens)
        order = np.argsort(hi, kind="stable")
        self._hi, self._lo = hi[order], lo[order]

    @classmethod
    def from_sorted(cls, hi: np.ndarray, lo: np.ndarray) -> TokenSet:
        """From halves already in order (a segment's maps, kit/segments.py): no copy."""
        tokens = cls.__new__(cls)
        tokens._hi, tokens._lo = hi, lo
        return tokens

    queries = staticmethod(_halves)

    def contains(self, queries: Queries) -> np.ndarray:
        """A boolean per query: is it in the set."""
        hi, lo = queries
        n = len(self._hi)
        if not n or not len(hi):
            return np.zeros(len(hi), dtype=bool)
        # The first entry not below each query; entries sharing its high half follow it.
        at = np.minimum(self._hi.searchsorted(hi), n - 1)
        same_high = self._hi[at] == hi
        found = same_high & (self._lo[at] == lo)
        for i in np.flatnonzero(same_high & ~found).tolist():
            j = int(at[i]) + 1
            while j < n and self._hi[j] == hi[i] and not found[i]:
                found[i] = self._lo[j] == lo[i]
                j += 1
        return np.asarray(found, dtype=bool)


@dataclass(frozen=True)
class RosterView:
    snapshot_id: int
    key_version: str
    tokens: TokenSet


@dataclass(frozen=True)
class FlagSource:
    """One current provider snapshot: the flag it asserts, by which kind of agency, as of when."""

    snapshot_id: int
    flag_code: str
    kind: str
    as_of: date
    tokens: TokenSet


@dataclass(frozen=True)
class HubView:
    generation: int
    credentials: Mapping[str, Credential]  # by certificate fingerprint
    grants: Mapping[tuple[str, str], frozenset[str]]  # (grantee, purpose) → live flag codes
    purposes: frozenset[str]
    rosters: Mapping[int, RosterView]  # by consumer agency id
    sources: tuple[FlagSource, ...]
    rows: int = field(default=0)  # stored tokens held

    def credential(self, fingerprint: str) -> Credential | None:
        return self.credentials.get(fingerprint)

    def granted_codes(self, grantees: Iterable[str], purpose: str) -> list[str]:
        codes: set[str] = set()
        for grantee in grantees:
            codes |= self.grants.get((grantee, purpose), frozenset())
        return sorted(codes)

    def has_purpose(self, code: str) -> bool:
        return code in self.purposes

    def answers(
        self, agency_id: int, stored: Sequence[bytes], flag_codes: Iterable[str]
    ) -> Answers:
        """What :meth:`matchhub.lookups.repository.LookupRepository.answers` reads from SQL,
        from the view."""
        roster = self.rosters.get(agency_id)
        if roster is None:
            return Answers(None, None, frozenset(), [])
        queries = TokenSet.queries(b"".join(stored))
        on = roster.tokens.contains(queries)
        members = frozenset(token for token, hit in zip(stored, on.tolist(), strict=True) if hit)
        wanted = set(flag_codes)
        flags: list[tuple[bytes, str, str, date]] = []
        if members:
            for source in self.sources:
                if source.flag_code not in wanted:
                    continue
                held = source.tokens.contains(queries) & on
                flags.extend(
                    (stored[i], source.flag_code, source.kind, source.as_of)
                    for i in np.flatnonzero(held).tolist()
                )
        return Answers(roster.snapshot_id, roster.key_version, members, flags)
