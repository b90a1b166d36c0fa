"""
Identifier schemes: what a valid, normalised identifier of each kind looks like.

A scheme name is part of every token (see `protocol.tokens.hashing`), so the same digits under two
schemes never collide. Scheme names are therefore part of the wire contract: once published they
are never renamed or re-purposed, only added.

The checks are deliberately modest. We test length and digits and refuse obvious placeholders
("000000000000"), and nothing more: we cannot cite a published check-digit algorithm for either
card, and a made-up checksum would silently drop real people from the match.

Errors never contain the identifier itself. An `InvalidIdentifier` says *why* (a stable
machine-readable `reason`) and *where* (a position and a code point), which is enough to fix an
extract and safe to write to a log that many people can read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "SCHEMES",
    "InvalidIdentifier",
    "Reason",
    "Scheme",
    "TokenError",
    "UnknownScheme",
    "get_scheme",
]


class TokenError(Exception):
    """Base class of every error raised by `matchhub.protocol.tokens`."""


class Reason(StrEnum):
    """Why an identifier was refused. The values are stable and part of the published spec."""

    EMPTY = "empty"
    BAD_CHARACTER = "bad_character"
    WRONG_LENGTH = "wrong_length"
    PLACEHOLDER = "placeholder"


class InvalidIdentifier(TokenError, ValueError):
    """
    An identifier could not be normalised or does not fit its scheme.

    `reason` is one of `Reason` (a `StrEnum`, so it also compares equal to the plain string).
    `position` and `code_point` are set for `Reason.BAD_CHARACTER`: the index of the offending
    character in the *raw* input and its Unicode code point.

    The message is built only from those fields, never from the input, so that `str(exc)` and
    `repr(exc)` are safe to log: a national ID number in a log file is exactly the leak this
    system exists to prevent.
    """

    def __init__(
        self,
        reason: Reason,
        message: str,
        *,
        position: int | None = None,
        code_point: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.position = position
        self.code_point = code_point


class UnknownScheme(TokenError, LookupError):
    """No scheme of that name is registered."""


@dataclass(frozen=True, slots=True)
class Scheme:
    """
    An identifier scheme: a name (ASCII, used as the hashing domain), a digit count, a description.

    `validate` checks an already *normalised* identifier; `protocol.tokens.normalise` calls it.
    """

    name: str
    length: int
    description: str

    def __post_init__(self) -> None:
        # The name goes into every token's message, followed by a 0x00 separator; an empty,
        # non-ASCII or NUL-containing name would make that encoding ambiguous.
        if not self.name or not self.name.isascii() or not self.name.isprintable():
            raise ValueError("a scheme name must be non-empty printable ASCII")
        if self.length < 1:
            raise ValueError("a scheme length must be positive")

    def validate(self, normalised: str) -> None:
        """
        Raise `InvalidIdentifier` unless `normalised` is exactly `length` ASCII digits and not a
        run of one repeated digit (a placeholder such as "000000000000" or "999999999999").
        """
        if normalised.isascii() and normalised.isdigit() and len(normalised) == self.length:
            if normalised.count(normalised[0]) == self.length:
                raise InvalidIdentifier(
                    Reason.PLACEHOLDER,
                    f"{self.name}: a run of one repeated digit is a placeholder, not an identifier",
                )
            return
        if not normalised:
            raise InvalidIdentifier(Reason.EMPTY, f"{self.name}: identifier is empty")
        for position, char in enumerate(normalised):
            if not ("0" <= char <= "9"):
                raise InvalidIdentifier(
                    Reason.BAD_CHARACTER,
                    f"{self.name}: character U+{ord(char):04X} at position {position} "
                    "is not a digit",
                    position=position,
                    code_point=ord(char),
                )
        raise InvalidIdentifier(
            Reason.WRONG_LENGTH,
            f"{self.name}: expected {self.length} digits, got {len(normalised)}",
        )


IQ_NCN = Scheme(
    name="iq.ncn",
    length=12,
    description="Iraq unified national card number (البطاقة الوطنية الموحدة), 12 digits",
)
JO_NN = Scheme(
    name="jo.nn",
    length=10,
    description="Jordan national number (الرقم الوطني), 10 digits",
)

SCHEMES: Mapping[str, Scheme] = MappingProxyType({s.name: s for s in (IQ_NCN, JO_NN)})
"""Every registered scheme by name. Read-only: a scheme is part of the wire contract."""


def get_scheme(name: str) -> Scheme:
    """Return the scheme called `name`, or raise `UnknownScheme`."""
    try:
        return SCHEMES[name]
    except KeyError:
        # Scheme names come from configuration, not from identifiers, so echoing is safe, but
        # keep it bounded in case a caller passes something unexpected.
        raise UnknownScheme(
            f"unknown identifier scheme {name!r:.40}; known: {', '.join(sorted(SCHEMES))}"
        ) from None
