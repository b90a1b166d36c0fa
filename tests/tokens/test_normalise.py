"""Normalisation: every spelling of one ID gives one value; everything else is refused, safely."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from matchhub.protocol.tokens import (
    MAX_RAW_LENGTH,
    SCHEMES,
    InvalidIdentifier,
    Reason,
    Scheme,
    UnknownScheme,
    get_scheme,
    is_token,
    looks_like_raw_identifier,
    normalise,
)
from matchhub.protocol.tokens.normalise import REMOVED_CHARACTERS

IQ = SCHEMES["iq.ncn"]
JO = SCHEMES["jo.nn"]

# --- An independent reference, written from TOKEN-SPEC.md rather than from the implementation ---

SPEC_WHITESPACE = [
    *range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
    0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
]  # fmt: skip
SPEC_DASHES = [0x2D, *range(0x2010, 0x2016), 0x2212, 0xFE63, 0xFF0D]
SPEC_PUNCTUATION = [0x2E, 0x2F, 0x5F]
SPEC_FORMAT = [
    0xAD, 0x61C, *range(0x200B, 0x2010), *range(0x202A, 0x202F), 0x2060,
    *range(0x2066, 0x206A), 0xFEFF,
]  # fmt: skip
SPEC_REMOVED = {chr(c) for c in SPEC_WHITESPACE + SPEC_DASHES + SPEC_PUNCTUATION + SPEC_FORMAT}
SPEC_DIGITS = {chr(base + d): str(d) for base in (0x660, 0x6F0) for d in range(10)}


def reference_normalise(raw: str, scheme: Scheme) -> str | Reason:
    """TOKEN-SPEC.md section 3, one step per line, character by character."""
    if len(raw) > 64:
        return Reason.WRONG_LENGTH
    out = []
    for char in unicodedata.normalize("NFKC", raw):
        if char in SPEC_REMOVED:
            continue
        digit = SPEC_DIGITS.get(char, char)
        if digit not in "0123456789":
            return Reason.BAD_CHARACTER
        out.append(digit)
    result = "".join(out)
    if not result:
        return Reason.EMPTY
    if len(result) != scheme.length:
        return Reason.WRONG_LENGTH
    if len(set(result)) == 1:
        return Reason.PLACEHOLDER
    return result


def outcome(raw: str, scheme: Scheme) -> str | Reason:
    try:
        return normalise(raw, scheme)
    except InvalidIdentifier as exc:
        return exc.reason


# --- Strategies ---

FAMILIES = {
    "ascii": 0x30,
    "arabic-indic": 0x660,
    "eastern-arabic-indic": 0x6F0,
    "fullwidth": 0xFF10,  # folded by NFKC
    "mathematical-bold": 0x1D7CE,  # folded by NFKC
}
SEPARATORS = [
    *sorted(REMOVED_CHARACTERS),
    "\uff0e",  # fullwidth full stop, NFKC -> "."
    "\uff0f",  # fullwidth solidus, NFKC -> "/"
    "\uff3f",  # fullwidth low line, NFKC -> "_"
    "\ufe58",  # small em dash, NFKC -> U+2014
]


def in_family(digits: str, family: str) -> str:
    return "".join(chr(FAMILIES[family] + int(d)) for d in digits)


def arabic(digits: str) -> str:
    return in_family(digits, "arabic-indic")


def eastern(digits: str) -> str:
    return in_family(digits, "eastern-arabic-indic")


def devanagari(digits: str) -> str:
    return "".join(chr(0x966 + int(d)) for d in digits)


def canonical_ids(scheme: Scheme) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=scheme.length, max_size=scheme.length).filter(
        lambda s: len(set(s)) > 1
    )


@st.composite
def spellings(draw: st.DrawFn, canonical: str, *, max_separators: int = 3) -> str:
    """One way an extract might spell `canonical`: any digit families, separators anywhere."""
    parts = []
    for digit in canonical:
        parts.extend(draw(st.lists(st.sampled_from(SEPARATORS), max_size=max_separators)))
        parts.append(chr(FAMILIES[draw(st.sampled_from(sorted(FAMILIES)))] + int(digit)))
    parts.extend(draw(st.lists(st.sampled_from(SEPARATORS), max_size=max_separators)))
    spelled = "".join(parts)
    return spelled if len(spelled) <= MAX_RAW_LENGTH else canonical


@st.composite
def id_and_spelling(draw: st.DrawFn, scheme: Scheme) -> tuple[str, str]:
    canonical = draw(canonical_ids(scheme))
    return canonical, draw(spellings(canonical))


# Text that mostly looks like an identifier, with the odd stranger mixed in: in particular the
# characters whose UTF-8 shares a lead byte or a low byte with the Arabic-Indic digits.
NEAR_IDS = st.text(
    alphabet=st.one_of(
        st.sampled_from("0123456789"),
        st.sampled_from([chr(FAMILIES[f] + d) for f in FAMILIES for d in range(10)]),
        st.sampled_from(SEPARATORS),
        st.sampled_from([chr(c) for c in (*range(0x670, 0x67A), *range(0x6E0, 0x6EA))]),
        st.characters(),
    ),
    max_size=20,
)


# --- Every spelling of one ID is that ID ---


@given(id_and_spelling(IQ))
@example(("123456789012", "\u200f" + arabic("1234") + "-" + eastern("5678") + " 9012\u200e"))
@example(("123456789012", "\ufeff" + in_family("123456789012", "fullwidth")))
def test_every_spelling_normalises_to_the_canonical_id(pair: tuple[str, str]) -> None:
    canonical, spelled = pair
    assert normalise(spelled, IQ) == canonical
    assert normalise(spelled, "iq.ncn") == canonical


@given(id_and_spelling(JO))
def test_every_spelling_normalises_for_jordan(pair: tuple[str, str]) -> None:
    canonical, spelled = pair
    assert normalise(spelled, JO) == canonical


@given(canonical_ids(IQ))
def test_canonical_id_is_a_fixed_point(canonical: str) -> None:
    assert normalise(canonical, IQ) == canonical
    assert normalise(normalise(canonical, IQ), IQ) == canonical


@pytest.mark.parametrize("separator", sorted(REMOVED_CHARACTERS), ids=lambda c: f"U+{ord(c):04X}")
def test_each_removed_character_is_removed_anywhere(separator: str) -> None:
    for spelled in (
        separator + "123456789012",
        "123456" + separator + "789012",
        "123456789012" + separator,
        arabic("123") + separator + arabic("456789012"),
    ):
        assert normalise(spelled, IQ) == "123456789012"


def test_removed_characters_match_the_specification() -> None:
    assert set(REMOVED_CHARACTERS) == SPEC_REMOVED


@given(NEAR_IDS)
@example(arabic("123456") + eastern("789012"))  # mixed families leave the fast path
@example(arabic("12345678901") + "\u0670")  # D9 B0: Arabic lead byte, Eastern low byte
@example(eastern("12345678901") + "\u06e2")  # DB A2: the same the other way round
@example(arabic("12345678901") + "\u06e2")  # each byte is a digit's, but not the pair
@example(eastern("12345678901") + "\u0670")
@example("".join(chr(0x7C0 + int(d)) for d in "123456789012"))  # NKo digits, also two bytes
@example("\ud800" * 12)
@example("1" * 65)
def test_implementation_agrees_with_the_reference(raw: str) -> None:
    """Differential test: the fast paths and the general path against the spec, on any text."""
    for scheme in (IQ, JO):
        assert outcome(raw, scheme) == reference_normalise(raw, scheme)


@given(NEAR_IDS)
def test_nfkc_first_changes_nothing(raw: str) -> None:
    folded = unicodedata.normalize("NFKC", raw)
    if len(folded) <= MAX_RAW_LENGTH:
        assert outcome(raw, IQ) == outcome(folded, IQ)


# --- Everything else is refused, with the right reason ---


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", Reason.EMPTY),
        ("   ", Reason.EMPTY),
        ("-\u00a0.\u200f/_", Reason.EMPTY),
        ("12345678901", Reason.WRONG_LENGTH),
        ("1234567890123", Reason.WRONG_LENGTH),
        ("1" * (MAX_RAW_LENGTH + 1), Reason.WRONG_LENGTH),
        ("x" * (MAX_RAW_LENGTH + 1), Reason.WRONG_LENGTH),
        ("000000000000", Reason.PLACEHOLDER),
        ("9999 9999 9999", Reason.PLACEHOLDER),
        (arabic("5" * 12), Reason.PLACEHOLDER),
        ("12345678901A", Reason.BAD_CHARACTER),
        ("123,456,789,012", Reason.BAD_CHARACTER),
        ("+123456789012", Reason.BAD_CHARACTER),
        ("1.23457E+11", Reason.BAD_CHARACTER),
        (devanagari("123456789012"), Reason.BAD_CHARACTER),
        (arabic("123") + "\u066c" + arabic("456789012"), Reason.BAD_CHARACTER),
        ("12345\ud80078901", Reason.BAD_CHARACTER),
    ],
)
def test_refused_with_reason(raw: str, reason: Reason) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalise(raw, IQ)
    assert caught.value.reason == reason
    assert caught.value.reason == str(reason)  # a StrEnum: compares equal to the wire string


@given(canonical_ids(IQ), st.integers(min_value=0, max_value=12), st.sampled_from("AZaz#,+\u0639"))
def test_bad_character_points_at_the_raw_input(canonical: str, at: int, letter: str) -> None:
    spelled = canonical[:at] + letter + canonical[at:]
    with pytest.raises(InvalidIdentifier) as caught:
        normalise(spelled, IQ)
    assert caught.value.reason == Reason.BAD_CHARACTER
    assert caught.value.position == at
    assert caught.value.code_point == ord(letter)
    assert f"U+{ord(letter):04X} at position {at}" in str(caught.value)


@given(
    st.sampled_from([IQ, JO]),
    st.text(alphabet="0123456789", min_size=1, max_size=30),
)
def test_wrong_length_is_refused(scheme: Scheme, digits: str) -> None:
    if len(digits) == scheme.length:
        return
    with pytest.raises(InvalidIdentifier) as caught:
        normalise(digits, scheme)
    assert caught.value.reason == Reason.WRONG_LENGTH


@pytest.mark.parametrize("scheme", [IQ, JO], ids=lambda s: s.name)
@pytest.mark.parametrize("digit", "0123456789")
def test_every_placeholder_is_refused(scheme: Scheme, digit: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalise(digit * scheme.length, scheme)
    assert caught.value.reason == Reason.PLACEHOLDER


# --- Errors are safe to log ---


@given(
    canonical_ids(IQ),
    st.sampled_from(
        [
            lambda s: s + "X",  # bad character after the digits
            lambda s: "X" + s,
            lambda s: s[:6] + "," + s[6:],
            lambda s: s + s[:1],  # 13 digits
            lambda s: s[:11],  # 11 digits
            lambda s: s + devanagari("1"),
            lambda s: s + "   " * 20,  # over the length bound
        ]
    ),
)
def test_error_never_contains_the_identifier(canonical: str, mangle: Callable[[str], str]) -> None:
    raw = mangle(canonical)
    with pytest.raises(InvalidIdentifier) as caught:
        normalise(raw, IQ)
    exc = caught.value
    # Any 6 consecutive digits of the input would already be too much.
    for text in (str(exc), repr(exc), exc.message, *map(str, exc.args)):
        for start in range(len(canonical) - 5):
            assert canonical[start : start + 6] not in text
    # Nothing that could carry the input is chained on.
    assert exc.__cause__ is None
    assert exc.__context__ is None


def test_non_string_is_a_type_error_without_the_value() -> None:
    with pytest.raises(TypeError) as caught:
        normalise(b"123456789012", IQ)  # type: ignore[arg-type]
    assert "123456789012" not in str(caught.value)


# --- Schemes ---


def test_registry() -> None:
    assert set(SCHEMES) == {"iq.ncn", "jo.nn"}
    assert get_scheme("iq.ncn").length == 12
    assert get_scheme("jo.nn").length == 10
    with pytest.raises(UnknownScheme):
        get_scheme("xx.unknown")
    with pytest.raises(UnknownScheme):
        normalise("123456789012", "iq.NCN")
    with pytest.raises(TypeError):
        SCHEMES["xx.new"] = IQ  # type: ignore[index]


@pytest.mark.parametrize("name", ["", "iq.ncn\x00", "العراق", "a b\n"])
def test_scheme_name_must_be_printable_ascii(name: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        Scheme(name=name, length=12, description="bad")


def test_validate_expects_normalised_input() -> None:
    IQ.validate("123456789012")
    with pytest.raises(InvalidIdentifier) as caught:
        IQ.validate("1234 5678 9012")
    assert caught.value.reason == Reason.BAD_CHARACTER
    assert caught.value.position == 4


# --- Raw-identifier detection (for the broker's error codes) ---


@given(id_and_spelling(IQ))
def test_any_spelling_of_an_id_looks_raw(pair: tuple[str, str]) -> None:
    assert looks_like_raw_identifier(pair[1])


@given(canonical_ids(JO))
def test_jordan_ids_look_raw(canonical: str) -> None:
    assert looks_like_raw_identifier(canonical)
    # As a JSON number an ID loses its leading zeros; with up to two gone it still looks raw.
    assert looks_like_raw_identifier(int(canonical)) == (int(canonical) >= 10**7)


@given(st.binary(min_size=32, max_size=32))
def test_tokens_never_look_raw(digest: bytes) -> None:
    token = digest.hex()
    assert is_token(token)
    assert not looks_like_raw_identifier(token)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("IQ-123456789012", True),
        (" 1234 5678 9012 ", True),
        (123456789012, True),
        (123456789012.0, True),
        ("12345678", True),
        ("1234567", False),  # too short to be an ID
        ("123456789012345", False),  # too long
        ("abc", False),
        ("", False),
        ("hello 12345678", False),  # mostly letters
        (True, False),
        (None, False),
        (1.5, False),
        (float("nan"), False),
        (["123456789012"], False),
        ("1" * 100, False),
    ],
)
def test_looks_like_raw_identifier_examples(value: object, expected: bool) -> None:
    assert looks_like_raw_identifier(value) is expected


def test_scheme_length_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Scheme(name="xx.none", length=0, description="bad")
