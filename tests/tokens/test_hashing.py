"""Keyed hashing and matching keys: standard HMAC, domain-separated, keys that never leak."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import pickle
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matchhub.protocol.tokens import (
    KEY_FILE_FORMAT,
    SCHEMES,
    InvalidIdentifier,
    InvalidMatchingKey,
    MatchingKey,
    Reason,
    Scheme,
    Tokeniser,
    is_token,
    normalise,
)

IQ = SCHEMES["iq.ncn"]
JO = SCHEMES["jo.nn"]
TEST_KEY = MatchingKey("test-v1", bytes(range(32)))
ARABIC = str.maketrans("0123456789", "".join(chr(0x660 + d) for d in range(10)))
EASTERN = str.maketrans("0123456789", "".join(chr(0x6F0 + d) for d in range(10)))


def stdlib_token(secret: bytes, scheme: str, canonical: str) -> str:
    """The specification, straight from the standard library: no precomputed states."""
    message = scheme.encode("ascii") + b"\x00" + canonical.encode("ascii")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def canonical_ids(scheme: Scheme) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=scheme.length, max_size=scheme.length).filter(
        lambda s: len(set(s)) > 1
    )


secrets_ = st.binary(min_size=32, max_size=200)  # beyond 64 bytes HMAC hashes the key first


# --- The token is HMAC-SHA256(key, scheme || 0x00 || id) ---


@given(secrets_, st.sampled_from([IQ, JO]), st.data())
def test_token_is_standard_hmac(secret: bytes, scheme: Scheme, data: st.DataObject) -> None:
    canonical = data.draw(canonical_ids(scheme))
    tokeniser = Tokeniser(MatchingKey("v1", secret), scheme)
    expected = stdlib_token(secret, scheme.name, canonical)
    assert tokeniser.token(canonical) == expected
    assert tokeniser.token_bytes(canonical) == bytes.fromhex(expected)
    # The Arabic-Indic fast path and the general path give the same token.
    assert tokeniser.token(canonical.translate(ARABIC)) == expected
    assert tokeniser.token(canonical.translate(EASTERN)) == expected
    assert tokeniser.token(f" {canonical[:4]}-{canonical[4:]} ") == expected
    assert tokeniser.token_bytes(canonical.translate(ARABIC)) == bytes.fromhex(expected)


@given(canonical_ids(IQ))
def test_token_is_64_lowercase_hex(canonical: str) -> None:
    token = Tokeniser(TEST_KEY, IQ).token(canonical)
    assert is_token(token)
    assert len(token) == 64
    assert token == token.lower()


def test_tokens_helper_matches_token() -> None:
    tokeniser = Tokeniser(TEST_KEY, "iq.ncn")
    raws = ["123456789012", "123456789012".translate(ARABIC)]
    assert list(tokeniser.tokens(raws)) == [tokeniser.token(r) for r in raws]
    assert len(set(tokeniser.tokens(raws))) == 1
    with pytest.raises(InvalidIdentifier):
        list(tokeniser.tokens(["123456789012", "not an id"]))


# --- Distinct inputs, distinct tokens ---


@given(canonical_ids(IQ), canonical_ids(IQ))
def test_different_ids_give_different_tokens(a: str, b: str) -> None:
    tokeniser = Tokeniser(TEST_KEY, IQ)
    assert (tokeniser.token(a) == tokeniser.token(b)) == (a == b)


def test_no_collisions_over_a_block_of_ids() -> None:
    tokeniser = Tokeniser(TEST_KEY, IQ)
    tokens = {tokeniser.token_bytes(f"{n:012d}") for n in range(100_000_000_001, 100_000_050_001)}
    assert len(tokens) == 50_000


@given(canonical_ids(IQ))
def test_key_versions_are_independent(canonical: str) -> None:
    v1, v2 = MatchingKey.generate("v1"), MatchingKey.generate("v2")
    assert Tokeniser(v1, IQ).token(canonical) != Tokeniser(v2, IQ).token(canonical)


@given(canonical_ids(IQ))
def test_schemes_are_domain_separated(canonical: str) -> None:
    """The same digits under two schemes of the same length never share a token."""
    twin = Scheme(name="xx.twelve", length=12, description="a second 12-digit scheme")
    iq, xx = Tokeniser(TEST_KEY, IQ), Tokeniser(TEST_KEY, twin)
    assert iq.token(canonical) != xx.token(canonical)
    assert xx.token(canonical) == stdlib_token(bytes(range(32)), "xx.twelve", canonical)


@given(st.text(alphabet="0123456789", min_size=10, max_size=10).filter(lambda s: len(set(s)) > 1))
def test_scheme_prefix_is_unambiguous(ten: str) -> None:
    """jo.nn || 0x00 || 10 digits never equals iq.ncn || 0x00 || 12 digits: the names differ."""
    jo = Tokeniser(TEST_KEY, JO).token(ten)
    assert jo == stdlib_token(bytes(range(32)), "jo.nn", ten)
    assert jo != Tokeniser(TEST_KEY, IQ).token(ten + "00")


# --- Invalid identifiers are refused by the tokeniser exactly as by normalise ---


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", Reason.EMPTY),
        ("12345678901", Reason.WRONG_LENGTH),
        ("12345678901".translate(ARABIC), Reason.WRONG_LENGTH),
        ("000000000000", Reason.PLACEHOLDER),
        ("\u0660" * 12, Reason.PLACEHOLDER),
        ("\u06f7" * 12, Reason.PLACEHOLDER),
        ("12345678901X", Reason.BAD_CHARACTER),
        ("12345678901".translate(ARABIC) + "\u0670", Reason.BAD_CHARACTER),
    ],
)
def test_tokeniser_refuses_like_normalise(raw: str, reason: Reason) -> None:
    tokeniser = Tokeniser(TEST_KEY, IQ)
    for method in (tokeniser.token, tokeniser.token_bytes):
        with pytest.raises(InvalidIdentifier) as caught:
            method(raw)
        assert caught.value.reason == reason
    with pytest.raises(InvalidIdentifier):
        normalise(raw, IQ)


@pytest.mark.parametrize("value", [None, 123456789012, b"123456789012"])
def test_tokeniser_refuses_non_strings(value: object) -> None:
    tokeniser = Tokeniser(TEST_KEY, IQ)
    with pytest.raises(TypeError):
        tokeniser.token(value)  # type: ignore[arg-type]


# --- is_token ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0" * 64, True),
        ("0123456789abcdef" * 4, True),
        ("0123456789ABCDEF" * 4, False),
        ("0" * 63, False),
        ("0" * 65, False),
        ("0" * 63 + "g", False),
        ("0" * 63 + "\n", False),
        ("\u0660" * 64, False),
        (b"0" * 64, False),
        (None, False),
        (0, False),
    ],
)
def test_is_token(value: object, expected: bool) -> None:
    assert is_token(value) is expected


# --- MatchingKey: the secret never shows ---


def secret_spellings(secret: bytes) -> Iterator[str]:
    yield secret.hex()
    yield secret.hex().upper()
    yield base64.b64encode(secret).decode()
    yield base64.urlsafe_b64encode(secret).decode().rstrip("=")
    yield repr(secret)
    yield str(list(secret))


@given(st.binary(min_size=32, max_size=64))
def test_repr_and_str_never_show_the_secret(secret: bytes) -> None:
    key = MatchingKey("2025-06", secret)
    tokeniser = Tokeniser(key, IQ)
    for shown in (repr(key), str(key), f"{key}", repr(tokeniser), str(tokeniser)):
        assert "2025-06" in shown
        for spelling in secret_spellings(secret):
            assert spelling not in shown
            assert spelling[:16] not in shown


def test_fingerprint_identifies_the_key_without_revealing_it() -> None:
    secret = bytes(range(32))
    key = MatchingKey("test-v1", secret)
    expected = hashlib.sha256(b"matchhub-matching-key-fingerprint/1\x00" + secret).hexdigest()[:16]
    assert key.fingerprint == expected
    assert MatchingKey("other", secret).fingerprint == key.fingerprint
    assert MatchingKey.generate("test-v1").fingerprint != key.fingerprint


def test_key_and_tokeniser_refuse_pickling() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(TEST_KEY)
    with pytest.raises(TypeError):
        pickle.dumps(Tokeniser(TEST_KEY, IQ))


@pytest.mark.parametrize("length", [0, 16, 31])
def test_short_keys_are_refused(length: int) -> None:
    with pytest.raises(InvalidMatchingKey, match="at least 32 bytes"):
        MatchingKey("v1", bytes(length))


@pytest.mark.parametrize("version", ["", "-v1", "v 1", "v1/../x", "v1\n", "ä", "v" * 65])
def test_bad_versions_are_refused(version: str) -> None:
    with pytest.raises(InvalidMatchingKey):
        MatchingKey(version, bytes(32))


def test_generate() -> None:
    a, b = MatchingKey.generate("v7"), MatchingKey.generate("v7")
    assert a.version == "v7"
    assert len(a.get_secret_value()) == 32
    assert a.get_secret_value() != b.get_secret_value()
    assert a.created is not None
    assert a.created.utcoffset() is not None


# --- Key files ---


def test_key_file_round_trip(tmp_path: Path) -> None:
    key = MatchingKey.generate("2025-06")
    path = tmp_path / "matching-key.json"
    key.to_file(path)
    loaded = MatchingKey.from_file(path)
    assert loaded.version == "2025-06"
    assert loaded.get_secret_value() == key.get_secret_value()
    assert loaded.created == key.created
    document = json.loads(path.read_text())
    assert document["format"] == KEY_FILE_FORMAT
    assert document["version"] == "2025-06"
    assert base64.b64decode(document["key"]) == key.get_secret_value()


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_key_file_is_owner_only(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "key.json"
    previous = os.umask(umask)
    try:
        MatchingKey.generate("v1").to_file(path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    first = MatchingKey.generate("v1")
    first.to_file(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        MatchingKey.generate("v2").to_file(path)
    assert path.read_bytes() == before
    assert MatchingKey.from_file(path).get_secret_value() == first.get_secret_value()


def test_key_file_refuses_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    link = tmp_path / "key.json"
    link.symlink_to(target)  # dangling: O_EXCL must not follow it and create the target
    with pytest.raises(FileExistsError):
        MatchingKey.generate("v1").to_file(link)
    assert not target.exists()


def write(path: Path, content: object) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


SECRET_B64 = base64.b64encode(b"\xa5" * 32).decode()
SHORT_B64 = base64.b64encode(b"\xa5" * 16).decode()


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not json " + SECRET_B64,
        '{"format": "matchhub-matching-key/1", "version": "v1", "key": "' + SECRET_B64,
        [SECRET_B64],
        {"format": "matchhub-matching-key/2", "version": "v1", "key": SECRET_B64},
        {"version": "v1", "key": SECRET_B64},
        {"format": KEY_FILE_FORMAT, "key": SECRET_B64},
        {"format": KEY_FILE_FORMAT, "version": 1, "key": SECRET_B64},
        {"format": KEY_FILE_FORMAT, "version": "v 1", "key": SECRET_B64},
        {"format": KEY_FILE_FORMAT, "version": "v1"},
        {"format": KEY_FILE_FORMAT, "version": "v1", "key": SECRET_B64 + "!"},
        {"format": KEY_FILE_FORMAT, "version": "v1", "key": SECRET_B64[:-2]},
        {"format": KEY_FILE_FORMAT, "version": "v1", "key": SHORT_B64},
        {"format": KEY_FILE_FORMAT, "version": "v1", "key": SECRET_B64, "created": "yesterday"},
        {"format": KEY_FILE_FORMAT, "version": "v1", "key": SECRET_B64, "created": 5},
    ],
)
def test_malformed_key_files_are_refused_without_leaking(tmp_path: Path, content: object) -> None:
    path = write(tmp_path / "key.json", content)
    with pytest.raises(InvalidMatchingKey) as caught:
        MatchingKey.from_file(path)
    exc = caught.value
    for text in (str(exc), repr(exc)):
        assert SECRET_B64[:12] not in text
        assert (b"\xa5" * 8).hex() not in text
    # A JSONDecodeError carries the whole document; it must not ride along as the context.
    assert exc.__context__ is None
    assert exc.__cause__ is None


def test_key_file_without_created_is_accepted(tmp_path: Path) -> None:
    document = {"format": KEY_FILE_FORMAT, "version": "v1", "key": SECRET_B64}
    path = write(tmp_path / "key.json", document)
    key = MatchingKey.from_file(path)
    assert key.created is None
    assert key.get_secret_value() == b"\xa5" * 32


def test_key_secret_must_be_bytes() -> None:
    with pytest.raises(InvalidMatchingKey, match="must be bytes"):
        MatchingKey("v1", "a string of more than thirty-two characters")  # type: ignore[arg-type]


def test_oversized_key_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "key.json", " " * (64 * 1024 + 1))
    with pytest.raises(InvalidMatchingKey, match="too large"):
        MatchingKey.from_file(path)


def test_failed_write_leaves_no_partial_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    path = tmp_path / "key.json"
    with pytest.raises(OSError, match="No space"):
        MatchingKey.generate("v1").to_file(path)
    assert not path.exists()
