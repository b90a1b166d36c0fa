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
in a batch that read the database's generation and found it unchanged (audit/writer.py);
otherwise the entry is refused and the lookup is answered again from SQL. So a revocation, a
withdrawn grant or a replaced snapshot reaches the very next answer that leaves the broker,
exactly as it did when every lookup read the database; the view only saves the reads.

Memory: 16 bytes a stored token, bounded by ``Settings.lookup_view_max_rows``; past it there is
no view and lookups read SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from matchhub.identity.repository import Credential

TOKEN_DTYPE = np.dtype("S16")


@dataclass(frozen=True)
class Answers:
    """What a lookup learns about its tokens (stored form), from the view or from SQL."""

    roster_id: int | None  # None: the caller has no current roster
    key_version: str | None
    members: frozenset[bytes]  # the tokens asked about that are on the roster
    flags: list[tuple[bytes, str, str, date]]  # (member, flag code, asserting kind, as of)


class TokenSet:
    """Stored tokens, sorted, for membership tests by binary search."""

    def __init__(self, tokens: bytes) -> None:
        if len(tokens) % TOKEN_DTYPE.itemsize:
            raise ValueError("stored tokens are 16 bytes each")
        self._tokens = np.sort(np.frombuffer(tokens, dtype=TOKEN_DTYPE))  # one sorted copy

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def nbytes(self) -> int:
        return int(self._tokens.nbytes)

    def contains(self, queries: np.ndarray) -> np.ndarray:
        """A boolean per query: is it in the set."""
        if not len(self._tokens) or not len(queries):
            return np.zeros(len(queries), dtype=bool)
        at = np.minimum(np.searchsorted(self._tokens, queries), len(self._tokens) - 1)
        return np.asarray(self._tokens[at] == queries, dtype=bool)


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
        queries = np.frombuffer(b"".join(stored), dtype=TOKEN_DTYPE)
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
