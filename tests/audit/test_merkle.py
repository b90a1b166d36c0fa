"""Tests of the RFC 9162 Merkle tree: known vectors, an exhaustive sweep and properties.

The vectors are the ones every Certificate Transparency implementation tests against, as kept
in transparency-dev/merkle (``testonly/constants.go`` and ``proof/verify_test.go``). The sweep
compares generation against a deliberately naive transcription of the RFC's recursive
definitions, and checks that every proof verifies and that every single change breaks it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchhub.protocol.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    consistency_proof,
    consistency_ranges,
    fold,
    inclusion_proof,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    root,
    subtrees,
    verify_consistency,
    verify_inclusion,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# --- transparency-dev/merkle testonly/constants.go -------------------------------------------

LEAF_INPUTS = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]

# NODE_HASHES[level][index]: the roots of all complete subtrees of the 8-leaf tree.
NODE_HASHES = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [
        h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
    ],
]

# ROOTS[size] for every prefix of the 8 leaves, from the empty tree.
ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

NH = NODE_HASHES
# The compact.Range hashes of every prefix (testonly.CompactTrees).
COMPACT_TREES: list[list[bytes]] = [
    [],
    [NH[0][0]],
    [NH[1][0]],
    [NH[1][0], NH[0][2]],
    [NH[2][0]],
    [NH[2][0], NH[0][4]],
    [NH[2][0], NH[1][2]],
    [NH[2][0], NH[1][2], NH[0][6]],
    [NH[3][0]],
]

# --- transparency-dev/merkle proof/verify_test.go (leaf indices there are 1-based) -----------

INCLUSION_PROOFS: list[tuple[int, int, list[bytes]]] = [
    (0, 1, []),
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

CONSISTENCY_PROOFS: list[tuple[int, int, list[bytes]]] = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")

VECTOR_LEAVES = [leaf_hash(data) for data in LEAF_INPUTS]


def flip(value: bytes, bit: int = 0) -> bytes:
    """``value`` with one bit flipped."""
    changed = bytearray(value)
    changed[(bit // 8) % len(changed)] ^= 1 << (bit % 8)
    return bytes(changed)


def fails(check: Callable[..., object], *args: object) -> bool:
    try:
        check(*args)
    except ProofError:
        return True
    return False


# --- the vectors ----------------------------------------------------------------------------


def test_leaf_and_node_hashes_match_the_vectors() -> None:
    assert NODE_HASHES[0] == VECTOR_LEAVES
    for level in range(1, len(NODE_HASHES)):
        below = NODE_HASHES[level - 1]
        assert [node_hash(below[2 * i], below[2 * i + 1]) for i in range(len(below) // 2)] == (
            NODE_HASHES[level]
        )


def test_leaf_hash_is_domain_separated() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert (
        node_hash(SOME_HASH, EMPTY_ROOT)
        == hashlib.sha256(b"\x01" + SOME_HASH + EMPTY_ROOT).digest()
    )
    # A node can never be passed off as a leaf over the concatenated children.
    assert node_hash(SOME_HASH, EMPTY_ROOT) != leaf_hash(SOME_HASH + EMPTY_ROOT)


def test_empty_tree_root() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT == ROOTS[0]
    assert root([]) == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(9))
def test_root_of_every_prefix_matches_the_vectors(size: int) -> None:
    assert root(VECTOR_LEAVES[:size]) == ROOTS[size]


@pytest.mark.parametrize("size", range(9))
def test_compact_range_matches_the_vectors(size: int) -> None:
    frontier = CompactRange()
    frontier.extend(VECTOR_LEAVES[:size])
    assert list(frontier.hashes) == COMPACT_TREES[size]
    assert frontier.root() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION_PROOFS)
def test_known_inclusion_proofs(index: int, size: int, expected: list[bytes]) -> None:
    leaves = VECTOR_LEAVES[:size]
    assert inclusion_proof(index, leaves) == expected
    verify_inclusion(index, size, leaves[index], expected, ROOTS[size])


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_PROOFS)
def test_known_inclusion_proofs_reject_corruption(
    index: int, size: int, proof: list[bytes]
) -> None:
    """The corruptions of transparency-dev's corruptInclusionProof, each of which must fail."""
    leaf, good_root = VECTOR_LEAVES[index], ROOTS[size]
    probes: list[tuple[int, int, bytes, list[bytes], bytes]] = [
        (index - 1, size, leaf, proof, good_root),
        (index + 1, size, leaf, proof, good_root),
        (index ^ 2, size, leaf, proof, good_root),
        (index, size * 2, leaf, proof, good_root),
        (index, size // 2, leaf, proof, good_root),
        (index, size, leaf_hash(b"WrongLeaf"), proof, good_root),
        (index, size, leaf, proof, EMPTY_ROOT),
        (index, size, leaf, proof, SOME_HASH),
        (index, size, leaf, [*proof, b""], good_root),
        (index, size, leaf, [*proof, good_root], good_root),
        (index, size, leaf, [b"", *proof], good_root),
        (index, size, leaf, [good_root, *proof], good_root),
    ]
    for position in range(len(proof)):
        wrong = list(proof)
        wrong[position] = flip(wrong[position], 3)
        probes.append((index, size, leaf, wrong, good_root))
    if proof:
        probes.append((index, size, leaf, proof[:-1], good_root))
    if len(proof) > 1:
        probes.append((index, size, leaf, [proof[0], SOME_HASH, *proof[1:]], good_root))
    for probe in probes:
        assert fails(verify_inclusion, *probe), probe


@pytest.mark.parametrize(("old_size", "new_size", "expected"), CONSISTENCY_PROOFS)
def test_known_consistency_proofs(old_size: int, new_size: int, expected: list[bytes]) -> None:
    assert consistency_proof(old_size, VECTOR_LEAVES[:new_size]) == expected
    verify_consistency(old_size, new_size, ROOTS[old_size], ROOTS[new_size], expected)


@pytest.mark.parametrize(("old_size", "new_size", "proof"), [p for p in CONSISTENCY_PROOFS if p[2]])
def test_known_consistency_proofs_reject_corruption(
    old_size: int, new_size: int, proof: list[bytes]
) -> None:
    """The corruptions of transparency-dev's corruptConsistencyProof, each of which must fail."""
    root1, root2 = ROOTS[old_size], ROOTS[new_size]
    probes: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (old_size - 1, new_size, root1, root2, proof),
        (old_size + 1, new_size, root1, root2, proof),
        (old_size ^ 2, new_size, root1, root2, proof),
        (old_size, new_size * 2, root1, root2, proof),
        (old_size, new_size // 2, root1, root2, proof),
        (old_size, new_size, leaf_hash(b"WrongRoot"), root2, proof),
        (old_size, new_size, root1, leaf_hash(b"WrongRoot"), proof),
        (old_size, new_size, root2, root1, proof),
        (old_size, new_size, root1, root2, []),
        (old_size, new_size, root1, root2, [*proof, b""]),
        (old_size, new_size, root1, root2, [*proof, root1]),
        (old_size, new_size, root1, root2, [*proof, root2]),
        (old_size, new_size, root1, root2, [b"", *proof]),
        (old_size, new_size, root1, root2, [root1, *proof]),
        (old_size, new_size, root1, root2, [root2, *proof]),
        (old_size, new_size, root1, root2, [proof[0], *proof]),
        (old_size, new_size, root1, root2, proof[:-1]),
    ]
    for position in range(len(proof)):
        wrong = list(proof)
        wrong[position] = flip(wrong[position], 4)
        probes.append((old_size, new_size, root1, root2, wrong))
    for old, new, r1, r2, p in probes:
        assert fails(verify_consistency, old, new, r1, r2, p), (old, new, p)


# --- edge cases and messages ----------------------------------------------------------------


def test_inclusion_in_a_one_leaf_tree() -> None:
    one = leaf_hash(b"data")
    verify_inclusion(0, 1, one, [], one)
    assert fails(verify_inclusion, 0, 1, one, [], SOME_HASH)
    assert fails(verify_inclusion, 0, 1, SOME_HASH, [], one)
    assert fails(verify_inclusion, 0, 1, b"", [], one)
    assert fails(verify_inclusion, 0, 1, one, [], b"")


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (1, 1), (2, 1), (-1, 4)])
def test_inclusion_out_of_range(index: int, size: int) -> None:
    with pytest.raises(ProofError, match="out of range"):
        verify_inclusion(index, size, SOME_HASH, [], EMPTY_ROOT)


def test_inclusion_messages_say_what_failed() -> None:
    proof = inclusion_proof(5, VECTOR_LEAVES)
    with pytest.raises(ProofError, match="does not match the root at size 8"):
        verify_inclusion(5, 8, VECTOR_LEAVES[5], proof, ROOTS[7])
    with pytest.raises(ProofError, match="too long"):
        verify_inclusion(5, 8, VECTOR_LEAVES[5], [*proof, SOME_HASH], ROOTS[8])
    with pytest.raises(ProofError, match="too short"):
        verify_inclusion(5, 8, VECTOR_LEAVES[5], proof[:-1], ROOTS[8])
    with pytest.raises(ProofError, match="element 1 must be 32 bytes"):
        verify_inclusion(5, 8, VECTOR_LEAVES[5], [proof[0], proof[1][:31], proof[2]], ROOTS[8])


def test_consistency_messages_say_what_failed() -> None:
    proof = consistency_proof(7, VECTOR_LEAVES)
    with pytest.raises(ProofError, match="does not match the old root at size 7"):
        verify_consistency(7, 8, ROOTS[6], ROOTS[8], proof)
    with pytest.raises(ProofError, match="does not match the new root at size 8"):
        verify_consistency(7, 8, ROOTS[7], ROOTS[6], proof)
    with pytest.raises(ProofError, match="larger than new size"):
        verify_consistency(8, 7, ROOTS[8], ROOTS[7], proof)
    with pytest.raises(ProofError, match="is empty"):
        verify_consistency(7, 8, ROOTS[7], ROOTS[8], [])
    with pytest.raises(ProofError, match="too long"):
        verify_consistency(7, 8, ROOTS[7], ROOTS[8], [*proof, SOME_HASH])
    with pytest.raises(ProofError, match="too short"):
        verify_consistency(7, 8, ROOTS[7], ROOTS[8], proof[:-1])
    with pytest.raises(ProofError, match="differ at the same size 8"):
        verify_consistency(8, 8, ROOTS[7], ROOTS[8], [])


def test_consistency_edge_cases() -> None:
    # The empty tree is a prefix of every tree, and a tree of itself; both need no proof.
    for size in range(9):
        verify_consistency(0, size, EMPTY_ROOT, ROOTS[size], [])
        verify_consistency(size, size, ROOTS[size], ROOTS[size], [])
        assert consistency_proof(0, VECTOR_LEAVES[:size]) == []
        assert consistency_proof(size, VECTOR_LEAVES[:size]) == []
    # ...but not with a proof, or with another root for the empty tree.
    assert fails(verify_consistency, 0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert fails(verify_consistency, 0, 1, EMPTY_ROOT, ROOTS[1], [EMPTY_ROOT])
    assert fails(verify_consistency, 1, 1, ROOTS[1], ROOTS[1], [EMPTY_ROOT])
    assert fails(verify_consistency, 0, 3, SOME_HASH, ROOTS[3], [])
    # Time travel to the past, and a missing proof.
    assert fails(verify_consistency, 1, 0, ROOTS[1], EMPTY_ROOT, [])
    assert fails(verify_consistency, 2, 1, ROOTS[2], ROOTS[1], [])
    assert fails(verify_consistency, 1, 2, ROOTS[1], ROOTS[2], [])
    assert fails(verify_consistency, -1, 2, ROOTS[1], ROOTS[2], [])
    # Hashes of the wrong size.
    assert fails(verify_consistency, 1, 1, b"", b"", [])
    assert fails(
        verify_consistency, 7, 8, ROOTS[7], ROOTS[8][:31], consistency_proof(7, VECTOR_LEAVES)
    )


def test_overlong_proofs_are_refused_before_hashing() -> None:
    with pytest.raises(ProofError, match="more than any tree needs"):
        verify_inclusion(0, 2**64, SOME_HASH, [SOME_HASH] * 129, SOME_HASH)
    with pytest.raises(ProofError, match="more than any tree needs"):
        verify_consistency(3, 2**64, SOME_HASH, SOME_HASH, [SOME_HASH] * 129)


def test_generation_rejects_out_of_range_arguments() -> None:
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(8, VECTOR_LEAVES)
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(-1, VECTOR_LEAVES)
    with pytest.raises(ValueError, match="out of range"):
        consistency_proof(9, VECTOR_LEAVES)
    with pytest.raises(ValueError, match="out of range"):
        consistency_proof(-1, VECTOR_LEAVES)
    with pytest.raises(ValueError, match="must be 32 bytes"):
        root([*VECTOR_LEAVES, b"short"])
    with pytest.raises(ValueError, match="must be 32 bytes"):
        node_hash(SOME_HASH, b"")


# --- an exhaustive sweep against the RFC's recursive definitions ----------------------------

SWEEP = 64
SWEEP_LEAVES = [leaf_hash(f"audit record {i}".encode()) for i in range(SWEEP)]


def _k(n: int) -> int:
    """The largest power of two smaller than n, found the slow and obvious way."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@cache
def ref_mth(lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) over SWEEP_LEAVES, transcribed from RFC 9162 section 2.1.1."""
    n = hi - lo
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return SWEEP_LEAVES[lo]
    k = _k(n)
    return hashlib.sha256(b"\x01" + ref_mth(lo, lo + k) + ref_mth(lo + k, hi)).digest()


def ref_path(m: int, lo: int, hi: int) -> list[bytes]:
    """PATH(m, D[lo:hi]), RFC 9162 section 2.1.3.1."""
    n = hi - lo
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, lo, lo + k), ref_mth(lo + k, hi)]
    return [*ref_path(m - k, lo + k, hi), ref_mth(lo, lo + k)]


def ref_sides(m: int, n: int) -> list[str]:
    """Which side each sibling of PATH(m, D[n]) is on: the shape of an inclusion proof."""
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_sides(m, k), "right"]
    return [*ref_sides(m - k, n - k), "left"]


def ref_subproof(m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], b), RFC 9162 section 2.1.4.1."""
    n = hi - lo
    if m == n:
        return [] if complete else [ref_mth(lo, hi)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, lo, lo + k, complete), ref_mth(lo + k, hi)]
    return [*ref_subproof(m - k, lo + k, hi, False), ref_mth(lo, lo + k)]


def ref_proof(m: int, n: int) -> list[bytes]:
    return [] if m in (0, n) else ref_subproof(m, 0, n, True)


SWEEP_ROOTS = [ref_mth(0, n) for n in range(SWEEP + 1)]


def test_sweep_roots_are_distinct_and_match() -> None:
    assert len(set(SWEEP_ROOTS)) == SWEEP + 1
    for n in range(SWEEP + 1):
        assert root(SWEEP_LEAVES[:n]) == SWEEP_ROOTS[n]


@pytest.mark.parametrize("size", range(1, SWEEP + 1))
def test_every_inclusion_proof_verifies_and_every_change_breaks_it(size: int) -> None:
    leaves = SWEEP_LEAVES[:size]
    good_root = SWEEP_ROOTS[size]
    for index in range(size):
        proof = inclusion_proof(index, leaves)
        assert proof == ref_path(index, 0, size)
        leaf = leaves[index]
        verify_inclusion(index, size, leaf, proof, good_root)

        for position in range(len(proof)):
            for bit in (0, 7 * position + 3, 255):
                wrong = list(proof)
                wrong[position] = flip(wrong[position], bit)
                assert fails(verify_inclusion, index, size, leaf, wrong, good_root)
        assert fails(verify_inclusion, index, size, leaf, proof, flip(good_root, index))
        assert fails(verify_inclusion, index, size, flip(leaf, size), proof, good_root)
        assert fails(verify_inclusion, index, size, leaf, [*proof, SOME_HASH], good_root)
        if proof:
            assert fails(verify_inclusion, index, size, leaf, proof[:-1], good_root)
        if len(proof) > 1:
            assert fails(verify_inclusion, index, size, leaf, proof[::-1], good_root)
        # Any other index: in a full binary tree no two leaves share a path.
        for other in range(-1, size + 1):
            if other != index:
                assert fails(verify_inclusion, other, size, leaf, proof, good_root)
        for other_size in range(1, SWEEP + 1):
            if other_size == size:
                continue
            # Against the true root of another size, the proof never verifies.
            assert fails(verify_inclusion, index, other_size, leaf, proof, SWEEP_ROOTS[other_size])
            # A proof does not commit to the size by itself, only through the root: it verifies
            # for another size exactly when that size gives the leaf the same path shape.
            same_shape = index < other_size and ref_sides(index, other_size) == ref_sides(
                index, size
            )
            assert fails(verify_inclusion, index, other_size, leaf, proof, good_root) is not (
                same_shape
            )


@pytest.mark.parametrize("new_size", range(1, SWEEP + 1))
def test_every_consistency_proof_verifies_and_every_change_breaks_it(new_size: int) -> None:
    leaves = SWEEP_LEAVES[:new_size]
    new_root = SWEEP_ROOTS[new_size]
    for old_size in range(1, new_size + 1):
        old_root = SWEEP_ROOTS[old_size]
        proof = consistency_proof(old_size, leaves)
        assert proof == ref_proof(old_size, new_size)
        verify_consistency(old_size, new_size, old_root, new_root, proof)

        for position in range(len(proof)):
            for bit in (0, 5 * position + 1, 255):
                wrong = list(proof)
                wrong[position] = flip(wrong[position], bit)
                assert fails(verify_consistency, old_size, new_size, old_root, new_root, wrong)
        bad_old, bad_new = flip(old_root, old_size), flip(new_root, new_size)
        assert fails(verify_consistency, old_size, new_size, bad_old, new_root, proof)
        assert fails(verify_consistency, old_size, new_size, old_root, bad_new, proof)
        assert fails(
            verify_consistency, old_size, new_size, old_root, new_root, [*proof, SOME_HASH]
        )
        if proof:
            assert fails(verify_consistency, old_size, new_size, new_root, old_root, proof)
            assert fails(verify_consistency, old_size, new_size, old_root, new_root, proof[:-1])
        for other in range(1, SWEEP + 1):
            # Another old size, against its true root and against the original one.
            if other != old_size and other <= new_size:
                other_root = SWEEP_ROOTS[other]
                assert fails(verify_consistency, other, new_size, other_root, new_root, proof)
                if len(ref_proof(other, new_size)) != len(proof) or other == new_size:
                    assert fails(verify_consistency, other, new_size, old_root, new_root, proof)
            # Another new size, likewise.
            if other != new_size and other >= old_size:
                other_root = SWEEP_ROOTS[other]
                assert fails(verify_consistency, old_size, other, old_root, other_root, proof)
                if len(ref_proof(old_size, other)) != len(proof) or other == old_size:
                    assert fails(verify_consistency, old_size, other, old_root, new_root, proof)


# --- CompactRange ---------------------------------------------------------------------------


def test_compact_range_matches_root_for_every_size_up_to_300() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(300)]
    frontier = CompactRange()
    assert frontier.size == 0
    for size in range(1, 301):
        assert frontier.append(leaves[size - 1]) == size - 1
        assert frontier.size == size
        assert len(frontier.hashes) == size.bit_count()
        assert frontier.root() == root(leaves[:size]), size
        # What a log stores after each append brings the frontier back exactly, through JSON.
        restored = CompactRange.from_dict(json.loads(json.dumps(frontier.to_dict())))
        assert restored == frontier
        assert restored.root() == frontier.root()
        assert CompactRange(frontier.size, frontier.hashes) == frontier
    # A frontier restored midway goes on exactly like one that never stopped.
    restored = CompactRange.from_dict(json.loads(json.dumps(_frontier(leaves[:137]).to_dict())))
    restored.extend(leaves[137:])
    assert restored == _frontier(leaves)
    assert restored.root() == root(leaves)


def test_compact_range_copy_is_independent() -> None:
    frontier = _frontier(VECTOR_LEAVES[:5])
    copy = frontier.copy()
    copy.append(VECTOR_LEAVES[5])
    assert frontier.size == 5
    assert frontier.root() == ROOTS[5]
    assert copy.root() == ROOTS[6]


def test_compact_range_to_dict_is_hex() -> None:
    assert _frontier(VECTOR_LEAVES[:3]).to_dict() == {
        "size": 3,
        "hashes": [NH[1][0].hex(), NH[0][2].hex()],
    }


@pytest.mark.parametrize(
    "state",
    [
        {"size": 3, "hashes": [NH[1][0].hex()]},
        {"size": 3, "hashes": [NH[1][0].hex(), NH[0][2].hex(), NH[0][3].hex()]},
        {"size": 1, "hashes": [NH[1][0].hex()[:-2]]},
        {"size": 1, "hashes": ["zz" * 32]},
        {"size": 1, "hashes": [NH[1][0]]},
        {"size": -1, "hashes": []},
        {"size": "1", "hashes": [NH[1][0].hex()]},
        {"size": True, "hashes": [NH[1][0].hex()]},
        {"hashes": []},
        {"size": 0},
    ],
)
def test_compact_range_rejects_bad_state(state: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"frontier|subtree|size"):
        CompactRange.from_dict(state)


def test_compact_range_rejects_bad_leaf() -> None:
    frontier = CompactRange()
    with pytest.raises(ValueError, match="32 bytes"):
        frontier.append(b"\x00" * 31)
    assert frontier.size == 0


def _frontier(leaves: list[bytes]) -> CompactRange:
    frontier = CompactRange()
    frontier.extend(leaves)
    return frontier


# --- properties on larger trees -------------------------------------------------------------

BIG_LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(3000)]


@settings(max_examples=60, deadline=None)
@given(data=st.data(), size=st.integers(min_value=1, max_value=len(BIG_LEAVES)))
def test_proofs_verify_on_random_trees(data: st.DataObject, size: int) -> None:
    leaves = BIG_LEAVES[:size]
    tree_root = _frontier(leaves).root()
    assert root(leaves) == tree_root
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    verify_inclusion(index, size, leaves[index], inclusion_proof(index, leaves), tree_root)
    old_size = data.draw(st.integers(min_value=0, max_value=size), label="old_size")
    proof = consistency_proof(old_size, leaves)
    verify_consistency(old_size, size, root(leaves[:old_size]), tree_root, proof)
    if proof:
        position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="at")
        proof[position] = flip(proof[position], data.draw(st.integers(0, 255), label="bit"))
        with pytest.raises(ProofError):
            verify_consistency(old_size, size, root(leaves[:old_size]), tree_root, proof)


def test_a_million_leaves() -> None:
    """Big trees are hashed without recursion; the split at 2**20 is checked the RFC's way."""
    half = 1 << 20
    size = half + 1000
    leaves = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(size)]
    tree_root = root(leaves)
    left = root(leaves[:half])
    assert tree_root == node_hash(left, root(leaves[half:]))
    proof = consistency_proof(half, leaves)
    assert len(proof) == 1
    verify_consistency(half, size, left, tree_root, proof)


# --- proofs from stored subtree roots (what the broker's audit_nodes table holds) --------------


def _stored_tree(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every perfect subtree's root as the log stores it: the leaves at level 0, and what
    :meth:`CompactRange.append` reports as each completes."""
    store = {(0, i): leaf for i, leaf in enumerate(leaves)}
    completed: list[tuple[int, int, bytes]] = []
    frontier = CompactRange()
    for leaf in leaves:
        frontier.append(leaf, completed)
    store.update(((level, idx), h) for level, idx, h in completed)
    return store


def _from_store(store: dict[tuple[int, int], bytes], ranges: list[tuple[int, int]]) -> list[bytes]:
    return [fold([store[key] for key in subtrees(lo, hi)]) for lo, hi in ranges]


@settings(max_examples=300)
@given(
    count=st.integers(min_value=1, max_value=260),
    picks=st.lists(st.integers(min_value=0, max_value=10**6), min_size=3, max_size=3),
)
def test_proofs_from_stored_subtrees_are_the_proofs_from_the_leaves(
    count: int, picks: list[int]
) -> None:
    leaves = [leaf_hash(n.to_bytes(4, "big")) for n in range(count)]
    store = _stored_tree(leaves)
    size = 1 + picks[0] % count
    index = picks[1] % size
    old = picks[2] % (size + 1)
    tree = leaves[:size]
    assert _from_store(store, inclusion_ranges(index, size)) == inclusion_proof(index, tree)
    assert _from_store(store, consistency_ranges(old, size)) == consistency_proof(old, tree)
    assert _from_store(store, [(0, size), (0, old)]) == [root(tree), root(leaves[:old])]
    # Only what a log of `count` leaves has stored is ever asked for, and O(log n) of it.
    wanted = {k for lo, hi in inclusion_ranges(index, size) for k in subtrees(lo, hi)}
    assert wanted <= store.keys()
    assert len(wanted) <= 2 * size.bit_length()
