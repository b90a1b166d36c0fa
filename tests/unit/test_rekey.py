"""The batched re-keying is AES-CMAC exactly, and the sealing round-trips."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from matchhub.keystore.rekey import Rekeyer, Sealer, derive

BROKER_KEY = bytes(range(32))  # TEST-ONLY


def _library_cmac(wire: bytes) -> bytes:
    mac = cmac.CMAC(algorithms.AES(derive(BROKER_KEY, "matchhub rekey v2")))
    mac.update(wire)
    return mac.finalize()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40))
def test_batched_rekey_equals_the_library_cmac(tokens: list[bytes]) -> None:
    stored = Rekeyer(BROKER_KEY).rekey_many(b"".join(tokens))
    assert [stored[i * 16 : i * 16 + 16] for i in range(len(tokens))] == [
        _library_cmac(t) for t in tokens
    ]


def test_rekey_depends_on_the_broker_key_and_refuses_ragged_input() -> None:
    wire = os.urandom(32)
    assert Rekeyer(BROKER_KEY).rekey(wire) != Rekeyer(bytes(32)).rekey(wire)
    assert len(Rekeyer(BROKER_KEY).rekey(wire)) == 16
    with pytest.raises(ValueError, match="32 bytes"):
        Rekeyer(BROKER_KEY).rekey_many(b"x" * 33)
    assert "broker key" in repr(Rekeyer(BROKER_KEY))
    assert BROKER_KEY.hex() not in repr(Rekeyer(BROKER_KEY))


def test_sealed_tokens_round_trip_and_are_not_the_wire_token() -> None:
    sealer = Sealer(BROKER_KEY)
    wire = os.urandom(32)
    sealed = sealer.seal(wire)
    assert wire not in sealed
    assert sealer.unseal(sealed) == wire
    assert sealer.seal(wire) == sealed  # deterministic, as a roster row needs
