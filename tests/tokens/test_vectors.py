"""connectors/token-vectors.json: complete, current, and right by more than self-consistency."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from matchhub.protocol.tokens import (
    InvalidIdentifier,
    MatchingKey,
    Reason,
    Tokeniser,
    get_scheme,
    looks_like_raw_identifier,
    normalise,
)
from matchhub.protocol.tokens.normalise import ARABIC_INDIC_DIGITS, EASTERN_ARABIC_INDIC_DIGITS

CONNECTORS = Path(__file__).resolve().parents[2] / "connectors"
VECTORS_FILE = CONNECTORS / "token-vectors.json"
DOCUMENT: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
VECTORS: list[dict[str, Any]] = DOCUMENT["vectors"]
VALID = [v for v in VECTORS if "token" in v]
INVALID = [v for v in VECTORS if "error" in v]


def vector_id(vector: dict[str, Any]) -> str:
    return str(vector["id"])


def test_the_key_is_the_labelled_test_key() -> None:
    key = DOCUMENT["test_key"]
    assert key["version"] == "test-v1"
    assert bytes.fromhex(key["hex"]) == bytes(range(32))
    assert "TEST KEY" in key["warning"]
    assert MatchingKey(key["version"], bytes.fromhex(key["hex"])).fingerprint == key["fingerprint"]


@pytest.mark.parametrize("vector", VALID, ids=vector_id)
def test_valid_vector(vector: dict[str, Any]) -> None:
    secret = bytes.fromhex(DOCUMENT["test_key"]["hex"])
    scheme = get_scheme(vector["scheme"])
    raw = vector["input"]
    assert " ".join(f"U+{ord(c):04X}" for c in raw) == vector["input_code_points"]
    assert normalise(raw, scheme) == vector["normalised"]
    message = bytes.fromhex(vector["message_hex"])
    assert message == scheme.name.encode() + b"\x00" + vector["normalised"].encode()
    # Independently of matchhub: the standard library's HMAC over the documented message.
    assert hmac.new(secret, message, hashlib.sha256).hexdigest() == vector["token"]
    tokeniser = Tokeniser(MatchingKey("test-v1", secret), scheme)
    assert tokeniser.token(raw) == vector["token"]
    assert tokeniser.token_bytes(raw).hex() == vector["token"]
    assert looks_like_raw_identifier(raw)


@pytest.mark.parametrize("vector", INVALID, ids=vector_id)
def test_invalid_vector(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalise(vector["input"], vector["scheme"])
    expected = vector["error"]
    assert caught.value.reason == expected["reason"]
    if "position" in expected:
        assert caught.value.position == expected["position"]
    if "code_point" in expected:
        assert caught.value.code_point == int(expected["code_point"].removeprefix("U+"), 16)


def test_pinned_token() -> None:
    """A literal, so that a change to the construction cannot regenerate its way past review."""
    by_id = {v["id"]: v for v in VALID}
    pinned = "b10ecba373b4e57e24c5ff585acdc275ad95bccfc77a82547bd0f425f7de4bd2"
    assert by_id["iq/ascii"]["input"] == "123456789012"
    assert by_id["iq/ascii"]["token"] == pinned
    assert Tokeniser(MatchingKey("test-v1", bytes(range(32))), "iq.ncn").token("123456789012") == (
        pinned
    )


def test_coverage() -> None:
    """The file exercises what an implementer in another language is most likely to get wrong."""
    schemes = {v["scheme"] for v in VALID}
    assert schemes == {"iq.ncn", "jo.nn"}
    assert {v["scheme"] for v in INVALID} == {"iq.ncn", "jo.nn"}
    inputs = "".join(v["input"] for v in VALID)
    for family in (ARABIC_INDIC_DIGITS, EASTERN_ARABIC_INDIC_DIGITS):
        assert any(all(c in family for c in v["input"]) for v in VALID)  # a pure-family vector
        assert set(family) <= set(inputs)  # every digit of the family appears somewhere
    spaces = " \t\u00a0\u2009\u202f\u3000"
    dashes = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"
    invisible = "\u200b\u200e\u200f\u061c\u202b\u202c\u2066\u2067\u2069\ufeff\u00ad"
    assert set(spaces + dashes + "./_" + invisible) <= set(inputs)
    assert any(ord(c) >= 0xFF10 for c in inputs)  # fullwidth forms, which need NFKC
    reasons = {v["error"]["reason"] for v in INVALID}
    assert reasons == {r.value for r in Reason}
    # Both digit families appear among the refusals too (a placeholder and a bad character).
    assert any(set(v["input"]) & set(ARABIC_INDIC_DIGITS) for v in INVALID)


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_token_vectors", CONNECTORS / "make_token_vectors.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_file_is_current() -> None:
    """The committed file is exactly what the generator writes: regenerate, never hand-edit."""
    assert _generator().render() == VECTORS_FILE.read_text(encoding="utf-8"), (
        "connectors/token-vectors.json is stale: "
        "run `PYTHONPATH=src python connectors/make_token_vectors.py`"
    )
