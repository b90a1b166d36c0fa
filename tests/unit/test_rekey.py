"""The batched re-keying is AES-CMAC exactly, and the sealing round-trips."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.exceptions import InvalidTag
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


def test_one_rekeyer_gives_the_library_cmac_call_after_call_and_thread_by_thread() -> None:
    # Each thread keeps its AES context between passes: nothing of one pass reaches the next.
    rekeyer = Rekeyer(BROKER_KEY)
    batches = [os.urandom(32 * n) for n in (1, 3, 10, 1, 7) for _ in range(4)]

    def check(batch: bytes) -> bool:
        stored = rekeyer.rekey_many(batch)
        wires = [batch[i : i + 32] for i in range(0, len(batch), 32)]
        return stored == b"".join(_library_cmac(w) for w in wires)

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(check, batches))
    assert all(check(b) for b in batches)


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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=0, max_size=40))
def test_batched_sealing_equals_the_library_aes_siv(tokens: list[bytes]) -> None:
    sealer = Sealer(BROKER_KEY)
    sealed = sealer.seal_many(b"".join(tokens))
    assert [sealed[i * 48 : i * 48 + 48] for i in range(len(tokens))] == [
        sealer.seal(t) for t in tokens
    ]
    assert sealer.unseal_many(sealed) == b"".join(tokens)


def test_batched_unsealing_refuses_what_this_key_did_not_seal() -> None:
    sealer = Sealer(BROKER_KEY)
    sealed = sealer.seal_many(os.urandom(32 * 5))
    for at in (0, 15, 16, 47, 48 * 4 + 30):  # the IV, the ciphertext, of any one token
        with pytest.raises(InvalidTag):
            sealer.unseal_many(sealed[:at] + bytes([sealed[at] ^ 1]) + sealed[at + 1 :])
    with pytest.raises(InvalidTag):
        Sealer(bytes(32)).unseal_many(sealed)
    with pytest.raises(ValueError, match="48 bytes"):
        sealer.unseal_many(sealed[:-1])


def test_batched_sealing_at_the_counters_edge_and_ragged_input() -> None:
    """The tokens whose counter's last word is largest (closest to carrying; V cannot be
    chosen, so they are picked out of 200,000) and smallest seal as the library's do."""
    sealer = Sealer(BROKER_KEY)
    tokens = os.urandom(32 * 200_000)
    sealed = sealer.seal_many(tokens)
    ivs = [sealed[i : i + 16] for i in range(0, len(sealed), 48)]
    order = sorted(range(len(ivs)), key=lambda i: int.from_bytes(ivs[i][12:], "big") & 0x7FFFFFFF)
    for i in order[-50:] + order[:50]:
        assert sealed[48 * i : 48 * i + 48] == sealer.seal(tokens[32 * i : 32 * i + 32])
        assert sealer.unseal(sealed[48 * i : 48 * i + 48]) == tokens[32 * i : 32 * i + 32]
    with pytest.raises(ValueError, match="32 bytes"):
        sealer.seal_many(b"x" * 33)
