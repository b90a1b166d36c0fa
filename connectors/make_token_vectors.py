"""
Generate connectors/token-vectors.json, the conformance vectors of TOKEN-SPEC.md.

The vectors are computed by `matchhub.protocol.tokens`, the one implementation the broker, the
connectors and the tests share, under a fixed and publicly known TEST key (bytes 0x00..0x1f, version
"test-v1"). That key protects nothing: never use it for real data. tests/tokens/test_vectors.py
checks every vector against the implementation, checks the tokens against the standard library's
`hmac` directly, and fails if this script would write a different file.

Regenerate after an intentional change to the specification (which is a breaking change for every
agency: bump the spec version and re-run the key ceremony), from the repository root:

    PYTHONPATH=src python connectors/make_token_vectors.py          # rewrite the file
    PYTHONPATH=src python connectors/make_token_vectors.py --check  # exit 1 if it is stale

(`PYTHONPATH=src` is unnecessary once matchhub is installed in the environment.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from matchhub.protocol.tokens import (
    InvalidIdentifier,
    MatchingKey,
    Tokeniser,
    get_scheme,
    normalise,
)

FORMAT = "matchhub-token-vectors/1"
OUTPUT = Path(__file__).with_name("token-vectors.json")

TEST_KEY_VERSION = "test-v1"
TEST_KEY = bytes(range(32))  # 0x00..0x1f: deliberately recognisable as not secret

_AR = str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669")
_EA = str.maketrans("0123456789", "\u06f0\u06f1\u06f2\u06f3\u06f4\u06f5\u06f6\u06f7\u06f8\u06f9")
_FW = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))


def arabic(digits: str) -> str:
    return digits.translate(_AR)


def eastern(digits: str) -> str:
    return digits.translate(_EA)


def fullwidth(digits: str) -> str:
    return digits.translate(_FW)


# (id, scheme, input, what it exercises). Every input here must normalise successfully.
VALID: list[tuple[str, str, str, str]] = [
    ("iq/ascii", "iq.ncn", "123456789012", "plain ASCII digits"),
    ("iq/ascii-leading-zero", "iq.ncn", "012345678901", "a leading zero is kept"),
    ("iq/ascii-other", "iq.ncn", "987654321098", "a second identifier"),
    ("iq/arabic-indic", "iq.ncn", arabic("123456789012"), "Arabic-Indic digits U+0660..U+0669"),
    ("iq/eastern", "iq.ncn", eastern("123456789012"), "Eastern Arabic-Indic digits U+06F0..U+06F9"),
    (
        "iq/mixed-families",
        "iq.ncn",
        arabic("1234") + eastern("5678") + "9012",
        "Arabic-Indic, Eastern Arabic-Indic and ASCII digits in one value",
    ),
    ("iq/fullwidth", "iq.ncn", fullwidth("123456789012"), "fullwidth digits, folded by NFKC"),
    ("iq/spaces", "iq.ncn", "1234 5678 9012", "ASCII spaces"),
    ("iq/tab-newline", "iq.ncn", "\t123456789012\r\n", "surrounding tab, CR and LF"),
    ("iq/nbsp", "iq.ncn", "1234\u00a05678\u00a09012", "no-break spaces U+00A0"),
    ("iq/thin-space", "iq.ncn", "1234\u20095678\u202f9012", "thin space and narrow no-break space"),
    ("iq/ideographic-space", "iq.ncn", "1234\u30005678 9012", "ideographic space U+3000"),
    ("iq/hyphen-minus", "iq.ncn", "1234-5678-9012", "ASCII hyphen-minus"),
    (
        "iq/dashes",
        "iq.ncn",
        "12\u20103\u201145\u201267\u20138\u201490\u20151\u22122",
        "hyphen, non-breaking hyphen, figure dash, en dash, em dash, horizontal bar, minus sign",
    ),
    ("iq/small-fullwidth-hyphen", "iq.ncn", "1234\ufe635678\uff0d9012", "U+FE63 and U+FF0D"),
    ("iq/dots", "iq.ncn", "1234.5678.9012", "full stops"),
    ("iq/slash-underscore", "iq.ncn", "1234/5678_9012", "solidus and low line"),
    (
        "iq/arabic-with-bidi",
        "iq.ncn",
        "\u200f" + arabic("1234") + "\u061c-" + arabic("5678") + "-" + arabic("9012") + "\u200e",
        "Arabic-Indic digits with RLM, Arabic letter mark, dashes and LRM",
    ),
    (
        "iq/bidi-isolates",
        "iq.ncn",
        "\u2067" + eastern("123456") + "\u2069\u2066" + "789012\u2069",
        "right-to-left and left-to-right isolates with pop directional isolate",
    ),
    (
        "iq/bidi-embedding",
        "iq.ncn",
        "\u202b" + arabic("123456789012") + "\u202c",
        "right-to-left embedding and pop directional formatting",
    ),
    (
        "iq/zero-width",
        "iq.ncn",
        "\ufeff1234\u200b5678\u200c9012\u200d\u2060\u00ad",
        "byte order mark, zero-width space/non-joiner/joiner, word joiner, soft hyphen",
    ),
    (
        "iq/fullwidth-separators",
        "iq.ncn",
        fullwidth("1234") + "\uff0e" + fullwidth("5678") + "\uff0f" + fullwidth("9012"),
        "fullwidth full stop and solidus, folded by NFKC to '.' and '/'",
    ),
    ("jo/ascii", "jo.nn", "9876543210", "plain ASCII digits"),
    ("jo/arabic-indic", "jo.nn", arabic("9876543210"), "Arabic-Indic digits"),
    ("jo/eastern", "jo.nn", eastern("9876543210"), "Eastern Arabic-Indic digits"),
    ("jo/dashes-spaces", "jo.nn", " 987-654\u00a03210 ", "dash, no-break space, outer spaces"),
]

# (id, scheme, input, expected reason, what it exercises). Every input must be refused.
INVALID: list[tuple[str, str, str, str, str]] = [
    ("iq/empty", "iq.ncn", "", "empty", "the empty string"),
    ("iq/only-separators", "iq.ncn", " -\u00a0.\u200f ", "empty", "nothing but separators"),
    ("iq/too-short", "iq.ncn", "12345678901", "wrong_length", "11 digits"),
    ("iq/too-long", "iq.ncn", "1234567890123", "wrong_length", "13 digits"),
    (
        "iq/too-long-input",
        "iq.ncn",
        "1234 " * 13,
        "wrong_length",
        "more than 64 characters before normalisation",
    ),
    ("iq/jordan-number", "iq.ncn", "9876543210", "wrong_length", "a 10-digit number for iq.ncn"),
    ("jo/iraq-number", "jo.nn", "123456789012", "wrong_length", "a 12-digit number for jo.nn"),
    ("iq/placeholder-zeros", "iq.ncn", "000000000000", "placeholder", "all zeros"),
    ("iq/placeholder-nines", "iq.ncn", "9999-9999-9999", "placeholder", "all nines, spelled"),
    ("iq/placeholder-arabic", "iq.ncn", arabic("111111111111"), "placeholder", "all ones"),
    ("jo/placeholder", "jo.nn", "0000000000", "placeholder", "all zeros"),
    ("iq/letter", "iq.ncn", "12345678901A", "bad_character", "an ASCII letter"),
    ("iq/arabic-letter", "iq.ncn", "\u0639" + arabic("12345678901"), "bad_character", "ع"),
    ("iq/comma", "iq.ncn", "123,456,789,012", "bad_character", "thousands separators"),
    ("iq/scientific", "iq.ncn", "1.23457E+11", "bad_character", "a spreadsheet's 1.23457E+11"),
    (
        "iq/arabic-separator",
        "iq.ncn",
        arabic("123") + "\u066c" + arabic("456789012"),
        "bad_character",
        "Arabic thousands separator U+066C",
    ),
    (
        "iq/devanagari",
        "iq.ncn",
        "".join(chr(0x0966 + int(d)) for d in "123456789012"),
        "bad_character",
        "Devanagari digits are not accepted",
    ),
    ("iq/plus-sign", "iq.ncn", "+123456789012", "bad_character", "a sign"),
    ("jo/letter", "jo.nn", "JO98765432", "bad_character", "a country prefix"),
]


def _code_points(text: str) -> str:
    return " ".join(f"U+{ord(c):04X}" for c in text)


def build() -> dict[str, Any]:
    """The vectors document, as a JSON-ready dict."""
    key = MatchingKey(TEST_KEY_VERSION, TEST_KEY)
    vectors: list[dict[str, Any]] = []
    for vector_id, scheme_name, raw, note in VALID:
        scheme = get_scheme(scheme_name)
        canonical = normalise(raw, scheme)
        message = scheme.name.encode("ascii") + b"\x00" + canonical.encode("ascii")
        vectors.append(
            {
                "id": vector_id,
                "scheme": scheme_name,
                "input": raw,
                "input_code_points": _code_points(raw),
                "note": note,
                "normalised": canonical,
                "message_hex": message.hex(),
                "token": Tokeniser(key, scheme).token(raw),
            }
        )
    for vector_id, scheme_name, raw, reason, note in INVALID:
        try:
            normalise(raw, scheme_name)
        except InvalidIdentifier as exc:
            if exc.reason != reason:
                raise AssertionError(f"{vector_id}: expected {reason}, got {exc.reason}") from None
            error: dict[str, Any] = {"reason": str(exc.reason)}
            if exc.position is not None:
                error["position"] = exc.position
            if exc.code_point is not None:
                error["code_point"] = f"U+{exc.code_point:04X}"
        else:
            raise AssertionError(f"{vector_id}: expected {reason}, but it was accepted")
        vectors.append(
            {
                "id": vector_id,
                "scheme": scheme_name,
                "input": raw,
                "input_code_points": _code_points(raw),
                "note": note,
                "error": error,
            }
        )
    return {
        "format": FORMAT,
        "specification": "connectors/TOKEN-SPEC.md",
        "generated_by": "connectors/make_token_vectors.py",
        "test_key": {
            "warning": "TEST KEY, publicly known. Never use it for real data.",
            "version": TEST_KEY_VERSION,
            "hex": TEST_KEY.hex(),
            "fingerprint": key.fingerprint,
        },
        "vectors": vectors,
    }


def render() -> str:
    """The file's exact text. ASCII-only JSON: invisible characters appear as \\uXXXX escapes."""
    return json.dumps(build(), indent=2, ensure_ascii=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate connectors/token-vectors.json.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write")
    args = parser.parse_args(argv)
    text = render()
    count = text.count('"id": ')
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {count} vectors to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
