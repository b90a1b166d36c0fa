"""Case lookup: a caseworker's few national IDs, checked here, sent as tokens only.

Each line of the form is one ID, spelled as people type it: Arabic-Indic or Eastern
Arabic-Indic digits, spaces, dashes (TOKEN-SPEC.md normalises them all). If any line is not a
valid ID, nothing at all is sent to the broker and the page names the line and the reason,
never echoing the line into a log. The IDs stay in the desk; the broker receives their tokens,
and answers in tokens, which the desk maps back to the lines the caseworker typed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from matchhub.protocol.tokens import InvalidIdentifier, Scheme, Tokeniser, normalise


@dataclass(frozen=True)
class Problem:
    line: int
    reason: str  # a TOKEN-SPEC reason: empty, bad_character, wrong_length, placeholder


@dataclass
class Entry:
    line: int
    typed: str
    token: str
    person: dict[str, str] | None = None
    on_roster: bool = False
    flags: list[dict[str, Any]] = field(default_factory=list)
    row: int | None = None  # the person's row in the current roster's index, if on it


def parse_ids(text: str, scheme: Scheme, tokeniser: Tokeniser) -> tuple[list[Entry], list[Problem]]:
    """The lines of `text` as entries (with their tokens), or the problems if any line is
    bad. Blank lines are skipped; a repeated ID is looked up once."""
    entries: list[Entry] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        typed = raw.strip()
        if not typed:
            continue
        try:
            canonical = normalise(typed, scheme)
        except InvalidIdentifier as exc:
            problems.append(Problem(number, exc.reason.value))
            continue
        if canonical in seen:
            continue
        seen.add(canonical)
        entries.append(Entry(number, typed, tokeniser.token(canonical)))
    return entries, problems
