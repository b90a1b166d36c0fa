"""
Identifier normalisation: many spellings of one ID number, one canonical string of ASCII digits.

Two agencies can only match a person if their connectors derive the same bytes from the same ID
number, however each extract happens to spell it: Arabic-Indic or Eastern Arabic-Indic digits,
fullwidth digits, spaces, non-breaking spaces, any of a dozen dashes, bidi marks pasted in by an
Arabic-locale spreadsheet. A mismatch here does not fail loudly; it silently drops people from the
match. So the rules are few, explicit and identical everywhere (connectors/TOKEN-SPEC.md is the
normative text and connectors/token-vectors.json the conformance suite):

1. Unicode NFKC (folds fullwidth digits and the many compatibility spaces and dashes).
2. Arabic-Indic digits U+0660..U+0669 and Eastern Arabic-Indic digits U+06F0..U+06F9 become
   ASCII digits (NFKC leaves them alone).
3. Whitespace, dashes, dots, slashes, underscores and invisible format characters are removed.
4. Anything else left over is refused (`Reason.BAD_CHARACTER`), never guessed at. In particular,
   digits of other scripts (Devanagari, Bengali, ...) are refused: an Iraqi or Jordanian extract
   never legitimately holds them, so their presence means the column is not what we think it is.
   Commas are refused too: "123,456,789,012" is the mark of a spreadsheet that formatted the ID as
   a number, which may also have dropped its leading zeros.
5. The scheme checks the result (length, digits, placeholder).

Speed matters: connectors tokenise millions of rows. An input that is already plain ASCII digits
(the common case) skips steps 1-4 entirely, since it is exactly what they would return for it, and
an input of only Arabic-Indic (or only Eastern Arabic-Indic) digits takes a short bytes-level path.
"""

from __future__ import annotations

import unicodedata

from matchhub.protocol.tokens.schemes import InvalidIdentifier, Reason, Scheme, get_scheme

__all__ = [
    "ARABIC_INDIC_DIGITS",
    "EASTERN_ARABIC_INDIC_DIGITS",
    "MAX_RAW_LENGTH",
    "REMOVED_CHARACTERS",
    "arabic_indic_to_ascii",
    "looks_like_raw_identifier",
    "normalise",
]

MAX_RAW_LENGTH = 64
"""Longest raw input, in code points, that is examined at all. Anything longer is refused with
`Reason.WRONG_LENGTH` before any Unicode processing: no valid ID needs 64 characters, and the
bound keeps the work per row small and predictable."""

ARABIC_INDIC_DIGITS = "".join(chr(cp) for cp in range(0x0660, 0x066A))
EASTERN_ARABIC_INDIC_DIGITS = "".join(chr(cp) for cp in range(0x06F0, 0x06FA))

_WHITESPACE = (
    # The Unicode White_Space property, spelled out so that the spec does not depend on any one
    # language's idea of "isspace".
    *range(0x0009, 0x000E),  # tab, line feed, vertical tab, form feed, carriage return
    0x0020,  # space
    0x0085,  # next line
    0x00A0,  # no-break space
    0x1680,  # ogham space mark
    *range(0x2000, 0x200B),  # en quad .. hair space (incl. thin space U+2009)
    0x2028,  # line separator
    0x2029,  # paragraph separator
    0x202F,  # narrow no-break space
    0x205F,  # medium mathematical space
    0x3000,  # ideographic space
)
_DASHES = (
    0x002D,  # hyphen-minus
    *range(0x2010, 0x2016),  # hyphen, non-breaking hyphen, figure dash, en/em dash, bar
    0x2212,  # minus sign
    0xFE63,  # small hyphen-minus
    0xFF0D,  # fullwidth hyphen-minus
)
_PUNCTUATION = (
    0x002E,  # full stop
    0x002F,  # solidus
    0x005F,  # low line
)
_FORMAT = (
    # Invisible characters that copy-and-paste from Arabic-locale software leaves in a cell.
    0x00AD,  # soft hyphen
    0x061C,  # Arabic letter mark
    *range(0x200B, 0x2010),  # zero-width space, ZWNJ, ZWJ, left-to-right / right-to-left mark
    *range(0x202A, 0x202F),  # bidi embeddings, pop directional formatting, overrides
    0x2060,  # word joiner
    *range(0x2066, 0x206A),  # bidi isolates and pop directional isolate
    0xFEFF,  # zero-width no-break space (byte order mark)
)

REMOVED_CHARACTERS: frozenset[str] = frozenset(
    chr(cp) for cp in (*_WHITESPACE, *_DASHES, *_PUNCTUATION, *_FORMAT)
)
"""Every character deleted in step 3 (after NFKC). Published in TOKEN-SPEC.md."""

_TABLE: dict[int, str | None] = {
    **{0x0660 + d: str(d) for d in range(10)},
    **{0x06F0 + d: str(d) for d in range(10)},
    **{ord(ch): None for ch in REMOVED_CHARACTERS},
}


def _low_byte_table(first: int) -> bytes:
    """A `bytes.translate` table: `first`..`first`+9 become b"0".."9", every other byte b"x"."""
    return bytes(0x30 + b - first if first <= b < first + 10 else 0x78 for b in range(256))


# In UTF-8, U+0660..U+0669 is D9 A0..D9 A9 and U+06F0..U+06F9 is DB B0..DB B9.
_ARABIC_INDIC_LOW_BYTES = _low_byte_table(0xA0)
_EASTERN_ARABIC_INDIC_LOW_BYTES = _low_byte_table(0xB0)


_ASCII_REMOVED = bytes(sorted(ord(ch) for ch in REMOVED_CHARACTERS if ch.isascii()))


def _fold(raw: str) -> str:
    """Steps 1-3: NFKC, digit mapping, separator removal. Total (never raises)."""
    if raw.isascii():
        # NFKC and the digit mapping are the identity on ASCII, and deleting bytes is several
        # times faster than `str.translate`; the result is the same.
        return raw.encode().translate(None, _ASCII_REMOVED).decode()
    return unicodedata.normalize("NFKC", raw).translate(_TABLE)


def arabic_indic_to_ascii(raw: str) -> bytes | None:
    """
    Steps 1-3 for a string made only of Arabic-Indic digits, or only of Eastern Arabic-Indic
    digits, returned as ASCII bytes; None for any other string.

    This is the second most common spelling in an Iraqi extract, and `str.translate` on
    non-ASCII text costs more than the HMAC. In UTF-8 each of these digits is two bytes: a lead
    byte, D9 for the whole Arabic-Indic family or DB for the whole Eastern family, then a byte
    that names the digit. So checking and mapping take a few C-level bytes operations. NFKC is the
    identity on these characters, so skipping it is exact; mixed families take the general path.
    """
    encoded = raw.encode("utf-8", "surrogatepass")
    # If every byte at an even offset is D9 (or every one DB), every character is two bytes
    # long: the first byte is a lead byte, D9 and DB start two-byte sequences, and so on by
    # induction. The low bytes then say which character of U+0640..U+067F (or U+06C0..U+06FF).
    leads = encoded[::2]
    if not leads.strip(b"\xd9"):
        digits = encoded[1::2].translate(_ARABIC_INDIC_LOW_BYTES)
    elif not leads.strip(b"\xdb"):
        digits = encoded[1::2].translate(_EASTERN_ARABIC_INDIC_LOW_BYTES)
    else:
        return None
    return digits if digits.isdigit() else None


def normalise(raw: str, scheme: Scheme | str) -> str:
    """
    Return the canonical form of identifier `raw` under `scheme` (a `Scheme` or its name).

    Raises `InvalidIdentifier` (with a `reason` from `Reason`) if it cannot be one, and
    `UnknownScheme` for an unknown scheme name. The exception never contains `raw`.
    """
    if isinstance(scheme, str):
        scheme = get_scheme(scheme)
    if not isinstance(raw, str):
        # Deliberately not `{raw!r}`: a bytes identifier is still an identifier.
        raise TypeError(f"an identifier must be str, not {type(raw).__name__}")
    return _normalise(raw, scheme)


def _normalise(raw: str, scheme: Scheme) -> str:
    """`normalise`, once its arguments are known to be a str and a `Scheme`."""
    if raw.isascii() and raw.isdigit():
        folded = raw  # the common case: steps 1-3 are the identity
    elif len(raw) > MAX_RAW_LENGTH:
        raise InvalidIdentifier(
            Reason.WRONG_LENGTH,
            f"{scheme.name}: input is longer than {MAX_RAW_LENGTH} characters",
        )
    else:
        fast = None if raw.isascii() else arabic_indic_to_ascii(raw)
        folded = fast.decode("ascii") if fast is not None else _fold(raw)
        if folded and not (folded.isascii() and folded.isdigit()):
            raise _bad_character(raw, folded, scheme)
    scheme.validate(folded)
    return folded


def _bad_character(raw: str, folded: str, scheme: Scheme) -> InvalidIdentifier:
    """
    Build the error for a character that survived folding, pointing into the *raw* input.

    We fold one character at a time to find the culprit, so the position refers to what the
    user sees in the extract rather than to the NFKC output. Only the culprit's code point and
    index go into the message.
    """
    for position, char in enumerate(raw):
        piece = _fold(char)
        if piece and not (piece.isascii() and piece.isdigit()):
            return _bad_character_error(scheme, ord(char), position)
    # Unreachable in practice (digits and separators do not compose under NFKC), but should
    # whole-string NFKC ever differ from per-character NFKC, still refuse, naming the culprit in
    # the folded string instead.
    culprit = next(char for char in folded if not "0" <= char <= "9")  # pragma: no cover
    return _bad_character_error(scheme, ord(culprit), None)  # pragma: no cover


def _bad_character_error(
    scheme: Scheme, code_point: int, position: int | None
) -> InvalidIdentifier:
    where = f" at position {position}" if position is not None else ""
    return InvalidIdentifier(
        Reason.BAD_CHARACTER,
        f"{scheme.name}: character U+{code_point:04X}{where} is not a digit or separator",
        position=position,
        code_point=code_point,
    )


def looks_like_raw_identifier(value: object) -> bool:
    """
    Whether `value` looks like an untokenised national ID number (of any supported scheme).

    The broker uses this to answer a raw ID sent where a token belongs with a specific error
    code, so the sender learns that it just transmitted personal data in clear, and so the
    broker knows not to echo or log it. Check `is_token` first: this is only a heuristic.

    True for a str of at most `MAX_RAW_LENGTH` characters which, folded as in `normalise`, holds
    8 to 14 digits and at most one non-digit for every four digits ("IQ-123456789012" counts);
    also true for an int (or integral float, as a JSON number may arrive) of 8 to 14 digits.
    Never raises.
    """
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        if not value.is_integer():
            return False
        value = int(value)
    if isinstance(value, int):
        return 10**7 <= abs(value) < 10**14
    if not isinstance(value, str) or len(value) > MAX_RAW_LENGTH:
        return False
    folded = _fold(value)
    digits = sum(1 for char in folded if "0" <= char <= "9")
    others = len(folded) - digits
    return 8 <= digits <= 14 and others * 4 <= digits
