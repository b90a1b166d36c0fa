"""Merkle tree hashing and proofs for the audit log, as in RFC 9162 section 2.1 (RFC 6962 v2).

The audit log is an append-only sequence of entries. Each entry is hashed into a *leaf hash*,
and the leaf hashes are combined into one *root hash* (the Merkle Tree Hash, MTH). A signed root
hash (a checkpoint, see :mod:`matchhub.protocol.checkpoint`) commits the log to every entry before
it, and two kinds of proof let an auditor check that commitment without trusting the broker:

* an **inclusion proof** shows that one entry is at a given index of the tree with a given root
  (RFC 9162 section 2.1.3): an auditor holding one audit record can check that it is in the log;
* a **consistency proof** shows that the tree with an older root is a prefix of the tree with a
  newer root (RFC 9162 section 2.1.4): nothing that was logged has since been removed, changed or
  reordered, so the log is append-only.

Why the exact RFC construction and not a home-made hash chain: its hashes are domain separated
(``0x00`` before a leaf, ``0x01`` before an interior node), so a leaf can never be passed off as
an interior node (the second-preimage attack on naive Merkle trees); its proofs are logarithmic
in the size of the log; and its test vectors, tools and independent verifiers (Certificate
Transparency, Go's checksum database, Sigstore's Rekor, transparency-dev) already exist, so an
auditor does not have to trust code written for matchhub alone.

The verification functions implement the algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2
step by step, because those are the ones that have been analysed; they raise :class:`ProofError`
saying which check failed. Generation follows the recursive definitions of PATH and PROOF
(sections 2.1.3.1 and 2.1.4.1) but walks them iteratively and never copies the leaf list, so a
proof over a million leaves costs one pass of hashing and no deep recursion.

Proofs are made of the roots of ranges of leaves (:func:`inclusion_ranges`,
:func:`consistency_ranges`), and each such root is the fold of O(log n) roots of perfect,
aligned subtrees (:func:`subtrees`, :func:`fold`). A log that stores every perfect subtree's
root as it completes (:meth:`CompactRange.append` reports them) therefore answers a proof by
reading O(log n) stored hashes, byte for byte the proof :func:`inclusion_proof` and
:func:`consistency_proof` compute from the leaves.

For a log kept in a database, :class:`CompactRange` keeps only the O(log n) roots of the perfect
subtrees that make up the tree (its "frontier"): appending a leaf and computing the new root
costs O(log n) hashes, and the frontier can be stored next to the last entry instead of
rehashing the whole log on every append.

All hashes are SHA-256 and 32 bytes long; every function checks the length of what it is given,
because a hash of the wrong length is always a bug or an attack, never a tree.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "ProofError",
    "consistency_proof",
    "consistency_ranges",
    "fold",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "root",
    "subtrees",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_MAX_PROOF_LENGTH = 2 * 64

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree: MTH({}) = SHA-256() (RFC 9162 section 2.1.1)."""


class ProofError(ValueError):
    """A Merkle proof did not verify; the message says which check failed."""


def leaf_hash(data: bytes) -> bytes:
    """Hash one log entry into a leaf: SHA-256(0x00 || data) (RFC 9162 section 2.1.1).

    The ``0x00`` prefix keeps leaf hashes and interior node hashes in separate domains.
    """
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two child subtree roots into their parent: SHA-256(0x01 || left || right)."""
    _check_hash(left, "left child hash")
    _check_hash(right, "right child hash")
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle Tree Hash of a list of leaf hashes (RFC 9162 section 2.1.1).

    The RFC defines MTH recursively, splitting ``n`` leaves at the largest power of two below
    ``n``. Hashing level by level and carrying an unpaired last node up unchanged builds the
    very same tree, without recursion and without slicing copies of the leaf list.
    """
    _check_hashes(leaf_hashes, "leaf hash")
    return _range_root(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Return the inclusion proof (audit path) of leaf ``index`` in the tree of ``leaf_hashes``.

    This is PATH(m, D[n]) of RFC 9162 section 2.1.3.1: the roots of the sibling subtrees on the
    way from the leaf up to the root, deepest first. It is empty for a tree of one leaf.

    Raises:
        ValueError: ``index`` is not the index of a leaf of the tree.
    """
    _check_hashes(leaf_hashes, "leaf hash")
    return [
        _range_root(leaf_hashes, lo, hi) for lo, hi in inclusion_ranges(index, len(leaf_hashes))
    ]


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges of leaves ``(lo, hi)`` whose roots make the inclusion proof of leaf
    ``index`` at ``size`` (:func:`inclusion_proof`), deepest first.

    Raises:
        ValueError: ``index`` is not the index of a leaf of the tree.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is out of range for tree size {size}")
    ranges: list[tuple[int, int]] = []
    # Walk the recursion of PATH top-down over the subtree D[lo:hi] that holds the leaf. Each
    # step takes the sibling, so the list comes out root-first and is reversed at the end.
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split_point(hi - lo)
        if index < mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
    ranges.reverse()
    return ranges


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Return the consistency proof from the tree's prefix of ``old_size`` leaves to the tree.

    This is PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 9162 section 2.1.4.1. The RFC
    defines it for 0 < m < n; for m = 0 (the empty tree is a prefix of every tree) and m = n (a
    tree is consistent with itself) the proof is empty, as :func:`verify_consistency` expects.

    Raises:
        ValueError: ``old_size`` is negative or larger than the tree.
    """
    _check_hashes(leaf_hashes, "leaf hash")
    ranges = consistency_ranges(old_size, len(leaf_hashes))
    return [_range_root(leaf_hashes, lo, hi) for lo, hi in ranges]


def consistency_ranges(old_size: int, size: int) -> list[tuple[int, int]]:
    """The ranges of leaves ``(lo, hi)`` whose roots make the consistency proof from
    ``old_size`` to ``size`` (:func:`consistency_proof`), in proof order.

    Raises:
        ValueError: ``old_size`` is negative or larger than the tree.
    """
    if not 0 <= old_size <= size:
        raise ValueError(f"old size {old_size} is out of range for tree size {size}")
    ranges: list[tuple[int, int]] = []
    if old_size in (0, size):
        return ranges
    # Walk SUBPROOF(m, D[lo:hi], b) top-down; ``m`` is relative to ``lo``. ``complete`` is the
    # RFC's flag b: true while D[lo:hi] starts at leaf 0, so that the verifier already knows the
    # root of the old tree when it is a complete subtree and it need not be sent.
    lo, hi, m, complete = 0, size, old_size, True
    while m != hi - lo:
        k = _split_point(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def subtrees(lo: int, hi: int) -> list[tuple[int, int]]:
    """The perfect subtrees ``(level, index)`` (leaves ``index * 2**level`` up to
    ``(index + 1) * 2**level``) that make up the leaves ``lo`` to ``hi``, left to right, each
    the largest that starts where the last ended and still fits.

    For the ranges of :func:`inclusion_ranges` and :func:`consistency_ranges`, and for a whole
    tree ``(0, size)``, ``lo`` is a multiple of the largest power of two not above
    ``hi - lo``, so these are exactly the subtrees RFC 9162 splits the range into, and the
    range's root is their roots folded from the right (:func:`fold`).
    """
    if not 0 <= lo <= hi:
        raise ValueError(f"not a range of leaves: {lo} to {hi}")
    found: list[tuple[int, int]] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo:
            level = min(level, (lo & -lo).bit_length() - 1)
        found.append((level, lo >> level))
        lo += 1 << level
    return found


def fold(roots: Sequence[bytes]) -> bytes:
    """The root of adjacent subtrees, left to right, each at least as large as the next:
    their roots folded from the right (the empty tree's root for none)."""
    _check_hashes(roots, "subtree hash")
    if not roots:
        return EMPTY_ROOT
    r = roots[-1]
    for h in reversed(roots[:-1]):
        r = _hash_children(h, r)
    return r


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    This is the algorithm of RFC 9162 section 2.1.3.2, step by step.

    Raises:
        ProofError: the proof does not prove that inclusion.
    """
    _check_hash(leaf_hash, "leaf hash", ProofError)
    _check_hash(root, "root hash", ProofError)
    _check_proof(proof, "inclusion proof")
    # 1. The leaf must be in the tree.
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is out of range for tree size {size}")
    # 2. and 3.
    fn, sn = index, size - 1
    r = leaf_hash
    # 4.
    for p in proof:
        # 4a. The path is already at the root: the proof has elements to spare.
        if sn == 0:
            raise ProofError(f"inclusion proof is too long for leaf {index} at size {size}")
        # 4b. The node is a right child, or the last node of its level (which has no right
        # sibling): the proof element is its left sibling.
        if fn & 1 or fn == sn:
            r = _hash_children(p, r)
            # If LSB(fn) is not set, shift until it is or fn is 0: this skips the levels at
            # which the last node of the tree has no sibling to hash with.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = _hash_children(r, p)
        # 4c.
        fn >>= 1
        sn >>= 1
    # 5.
    if sn != 0:
        raise ProofError(f"inclusion proof is too short for leaf {index} at size {size}")
    if not hmac.compare_digest(r, root):
        raise ProofError(f"inclusion proof for leaf {index} does not match the root at size {size}")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` leaves with ``old_root`` is a prefix of the tree of
    ``new_size`` leaves with ``new_root``.

    For 0 < old_size < new_size this is the algorithm of RFC 9162 section 2.1.4.2, step by step.
    The RFC leaves the edge cases to the caller; here the proof must be empty for them, and
    ``old_root`` must be the empty-tree root for ``old_size`` 0 and equal ``new_root`` for equal
    sizes: two different roots at one size are a fork, not a consistent history.

    Raises:
        ProofError: the proof does not prove that consistency.
    """
    _check_hash(old_root, "old root hash", ProofError)
    _check_hash(new_root, "new root hash", ProofError)
    _check_proof(proof, "consistency proof")
    if old_size < 0 or new_size < 0:
        raise ProofError(f"tree sizes must not be negative: {old_size} and {new_size}")
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size in (0, new_size):
        _verify_trivial_consistency(old_size, new_size, old_root, new_root, proof)
        return
    fr, sr = _consistency_roots(old_size, new_size, old_root, proof)
    # 7. (continued)
    if not hmac.compare_digest(fr, old_root):
        raise ProofError(f"consistency proof does not match the old root at size {old_size}")
    if not hmac.compare_digest(sr, new_root):
        raise ProofError(f"consistency proof does not match the new root at size {new_size}")


def _verify_trivial_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """The cases RFC 9162 leaves out: from the empty tree, and between equal sizes."""
    if proof:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} must be empty, "
            f"got {len(proof)} hashes"
        )
    if old_size == 0:
        if not hmac.compare_digest(old_root, EMPTY_ROOT):
            raise ProofError("old root is not the root of the empty tree at size 0")
    elif not hmac.compare_digest(old_root, new_root):
        raise ProofError(f"old and new roots differ at the same size {new_size}")


def _consistency_roots(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """Steps 1 to 7 of RFC 9162 section 2.1.4.2 for 0 < old_size < new_size, up to the final
    comparison: return (fr, sr), the old and new roots that the proof leads to."""
    # 1.
    if not proof:
        raise ProofError(f"consistency proof from size {old_size} to {new_size} is empty")
    path = list(proof)
    # 2. When the old tree is a complete subtree, its root is the starting point and is not
    # sent in the proof.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3.
    fn, sn = old_size - 1, new_size - 1
    # 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        # 6a.
        if sn == 0:
            raise ProofError(f"consistency proof from size {old_size} to {new_size} is too long")
        # 6b.
        if fn & 1 or fn == sn:
            fr = _hash_children(c, fr)
            sr = _hash_children(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = _hash_children(sr, c)
        # 6c.
        fn >>= 1
        sn >>= 1
    # 7.
    if sn != 0:
        raise ProofError(f"consistency proof from size {old_size} to {new_size} is too short")
    return fr, sr


class CompactRange:
    """The frontier of an append-only Merkle tree: enough to append leaves and compute roots.

    A tree of ``n`` leaves is made of one perfect subtree per set bit of ``n`` (for 13 = 8+4+1:
    leaves 0-7, 8-11 and 12), and RFC 9162's root is these subtree roots folded from the right.
    Keeping only those ``popcount(n)`` hashes, left to right, is what transparency-dev's
    ``compact.Range`` over ``[0, n)`` does: appending a leaf merges equal-sized subtrees like a
    binary counter carrying (O(log n) hashes), and the root costs as many again.

    This lets a log kept in a database persist the frontier (:meth:`to_dict` / :meth:`from_dict`)
    with its last entry and compute each new root without reading, or rehashing, the log.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        """Rebuild the frontier of a tree of ``size`` leaves from its subtree roots.

        Raises:
            ValueError: the hashes are not ``popcount(size)`` hashes of 32 bytes.
        """
        frontier = list(hashes)
        if size < 0:
            raise ValueError(f"tree size must not be negative, got {size}")
        if len(frontier) != size.bit_count():
            raise ValueError(
                f"a tree of size {size} has {size.bit_count()} subtree hashes, got {len(frontier)}"
            )
        _check_hashes(frontier, "subtree hash")
        self._size = size
        self._hashes = frontier

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The roots of the perfect subtrees of the tree, largest (leftmost) first."""
        return tuple(self._hashes)

    def append(
        self, leaf_hash: bytes, completed: list[tuple[int, int, bytes]] | None = None
    ) -> int:
        """Append one leaf hash and return its index in the tree. Each perfect subtree the
        leaf completes (above the leaf itself) is added to ``completed``, if given, as
        ``(level, index, root)``: what a log stores to answer proofs (:func:`subtrees`)."""
        _check_hash(leaf_hash, "leaf hash")
        index = self._size
        h = leaf_hash
        # Each trailing 1 bit of the old size is a perfect subtree of the new leaf's size that
        # now has a right sibling: merge them, exactly as a binary counter carries.
        carry, level = index, 0
        while carry & 1:
            h = _hash_children(self._hashes.pop(), h)
            carry >>= 1
            level += 1
            if completed is not None:
                completed.append((level, index >> level, h))
        self._hashes.append(h)
        self._size = index + 1
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append several leaf hashes in order."""
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """Return the root of the tree: the subtree roots folded from the right."""
        if not self._hashes:
            return EMPTY_ROOT
        r = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            r = _hash_children(h, r)
        return r

    def copy(self) -> CompactRange:
        """Return an independent copy, e.g. to compute a root before committing an append."""
        return CompactRange(self._size, self._hashes)

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready form: ``{"size": n, "hashes": [lowercase hex, ...]}``."""
        return {"size": self._size, "hashes": [h.hex() for h in self._hashes]}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> CompactRange:
        """Rebuild a frontier saved with :meth:`to_dict`.

        Raises:
            ValueError: the data is not a valid frontier.
        """
        size = data.get("size")
        hashes = data.get("hashes")
        if isinstance(size, bool) or not isinstance(size, int):
            raise ValueError("frontier size must be an integer")
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise ValueError("frontier hashes must be a list of hex strings")
        try:
            decoded = [bytes.fromhex(h) for h in hashes]
        except ValueError as exc:
            raise ValueError("frontier hashes must be a list of hex strings") from exc
        return cls(size, decoded)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable, so not hashable

    def __repr__(self) -> str:
        hashes = ", ".join(h.hex() for h in self._hashes)
        return f"CompactRange(size={self._size}, hashes=[{hashes}])"


def _hash_children(left: bytes, right: bytes) -> bytes:
    # node_hash without the length checks, for inputs that are already checked.
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split_point(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n > 1), where RFC 9162 splits."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_root(leaf_hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) of already checked leaf hashes, hashed level by level."""
    if lo == hi:
        return EMPTY_ROOT
    sha256 = hashlib.sha256
    prefix = _NODE_PREFIX
    # The first level reads the caller's sequence in place; later levels are half as long.
    level = [
        sha256(prefix + leaf_hashes[i] + leaf_hashes[i + 1]).digest() for i in range(lo, hi - 1, 2)
    ]
    if (hi - lo) & 1:
        level.append(leaf_hashes[hi - 1])
    while len(level) > 1:
        odd = level[-1] if len(level) & 1 else None
        level = [
            sha256(prefix + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if odd is not None:
            level.append(odd)
    return level[0]


def _check_hash(value: bytes, what: str, error: type[ValueError] = ValueError) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise error(f"{what} must be {HASH_SIZE} bytes")


def _check_hashes(values: Iterable[bytes], what: str) -> None:
    for position, value in enumerate(values):
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise ValueError(f"{what} {position} must be {HASH_SIZE} bytes")


def _check_proof(proof: Sequence[bytes], what: str) -> None:
    # No proof in a tree of up to 2**64 leaves is longer than this; refusing longer ones early
    # keeps a hostile proof from costing more than an honest one.
    if len(proof) > _MAX_PROOF_LENGTH:
        raise ProofError(f"{what} has {len(proof)} hashes, more than any tree needs")
    for position, value in enumerate(proof):
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise ProofError(f"{what} element {position} must be {HASH_SIZE} bytes")
