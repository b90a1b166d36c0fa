"""Lookup rules. A token off the caller's current roster gets ``on_roster: false`` and no flags,
whatever the providers hold: the broker is not an oracle for the whole population."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from matchhub.catalogue import service as catalogue
from matchhub.identity.schemas import Principal
from matchhub.keystore.rekey import Rekeyer
from matchhub.kit.errors import UnprocessableEntity
from matchhub.lookups.inmemory import Answers, HubView
from matchhub.lookups.repository import LookupRepository
from matchhub.lookups.schemas import LookupRequest
from matchhub.protocol.tokens import is_token, looks_like_raw_identifier


def check_tokens(tokens: list[str], limit: int) -> None:
    if len(tokens) > limit:
        raise UnprocessableEntity(
            f"at most {limit} tokens a lookup; use a match job for the whole roster",
            code="too_many_tokens",
        )
    for index, token in enumerate(tokens):
        if not is_token(token):
            if looks_like_raw_identifier(token):
                raise UnprocessableEntity(
                    f"tokens[{index}] looks like a raw identifier; the broker never accepts one",
                    code="raw_identifier_refused",
                    details={"index": index},
                )
            raise UnprocessableEntity(
                f"tokens[{index}] is not 64 lowercase hex characters",
                code="invalid_token",
                details={"index": index},
            )


def lookup(
    session: Session, principal: Principal, request: LookupRequest, rekeyer: Rekeyer, limit: int
) -> Answer:
    """The answer from the database."""
    granted = catalogue.granted_flags(session, principal, request.purpose, None)
    check_tokens(request.tokens, limit)
    stored = _stored(request.tokens, rekeyer)
    found = LookupRepository(session).answers(principal.agency_id, set(stored.values()), granted)
    return _respond(request, stored, found)


def lookup_in_view(
    view: HubView, principal: Principal, request: LookupRequest, rekeyer: Rekeyer, limit: int
) -> Answer:
    """The same answer from the in-memory view (lookups/inmemory.py), by the same rules."""
    granted = catalogue.granted_flags_with(
        view.granted_codes, view.has_purpose, principal, request.purpose, None
    )
    check_tokens(request.tokens, limit)
    stored = _stored(request.tokens, rekeyer)
    found = view.answers(principal.agency_id, list(stored.values()), granted)
    return _respond(request, stored, found)


def _stored(tokens: list[str], rekeyer: Rekeyer) -> dict[str, bytes]:
    """Each wire token's stored form (re-keyed as at ingest)."""
    keyed = rekeyer.rekey_many(bytes.fromhex("".join(tokens)))
    return {token: keyed[16 * i : 16 * i + 16] for i, token in enumerate(tokens)}


@dataclass(frozen=True)
class Answer:
    """A lookup's answer as plain data, in the shape of
    :class:`~matchhub.lookups.schemas.LookupResponse`, serialised once by :meth:`json`.

    The route returns those bytes as they are: building the response models, and FastAPI
    validating and serialising them again, was about a tenth of a lookup's time on the event
    loop (docs/benchmarks.md). tests/api/test_queries.py checks the bytes of each answer it
    gets against the model."""

    purpose: str
    roster_version: int | None
    results: list[dict[str, Any]]  # {"token", "on_roster", "flags": [{"code", "source", "as_of"}]}

    def json(self, reference: int | None) -> bytes:
        body = {
            "purpose": self.purpose,
            "roster_version": self.roster_version,
            "results": self.results,
            "reference": reference,
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _respond(request: LookupRequest, stored: dict[str, bytes], found: Answers) -> Answer:
    if request.key_version is not None and found.key_version != request.key_version:
        raise UnprocessableEntity(
            "key_version is not the key version of your current roster",
            code="wrong_key_version",
        )
    flags_of: dict[bytes, set[tuple[str, str, date]]] = defaultdict(set)
    for member, code, kind, as_of in found.flags:
        flags_of[member].add((code, kind, as_of))
    results = []
    for token in request.tokens:
        key = stored[token]
        on = key in found.members
        flags = sorted(flags_of.get(key, ())) if on else []
        results.append(
            {
                "token": token,
                "on_roster": on,
                "flags": [{"code": c, "source": k, "as_of": a.isoformat()} for c, k, a in flags],
            }
        )
    return Answer(str(request.purpose), found.roster_id, results)
