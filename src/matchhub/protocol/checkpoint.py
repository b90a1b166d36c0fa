"""Signed checkpoints of the audit log, and the witness that holds the log to them.

A *checkpoint* is the log's signed statement "my tree of N entries has root hash R". It is
published in the C2SP formats that transparency logs share (https://c2sp.org/tlog-checkpoint on
top of https://c2sp.org/signed-note, the format of Go's checksum database and of Sigstore's
Rekor)::

    audit.matchhub.example/log      <- origin: which log this is
    1234                            <- tree size, decimal
    3q2+7w...=                      <- root hash, standard base64
                                    <- blank line
    — audit.matchhub.example/log AbCd...=   <- em dash, key name, base64(key ID || signature)

A signature alone does not make a log trustworthy: whoever holds the signing key (an operator,
or an attacker on the broker host) can sign a second, rewritten history, or show an auditor an
older checkpoint so that recent records seem never to have happened. What prevents that is a
*witness* (:class:`Witness`): a party outside the broker, such as an auditor or a connector,
that remembers the last checkpoint it accepted and accepts a new one only with a consistency
proof that the old tree is a prefix of the new tree. A witness therefore turns "the log was
rewritten" or "the log went back in time" into an error, and two signed checkpoints of the same
size with different roots into portable evidence that the key holder forked the log.

The signer key and verifier key strings are those of golang.org/x/mod/sumdb/note, so keys can be
checked or made with the Go tooling as well::

    verifier key:  <name>+<8 hex digits of key ID>+<base64(0x01 || 32-byte Ed25519 public key)>
    signer key:    PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || 32-byte Ed25519 seed)>

Every failure raises :class:`CheckpointError`, whose :attr:`~CheckpointError.reason` is a stable
machine-readable code (:class:`Reason`) and whose message says what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from matchhub.protocol.merkle import HASH_SIZE, ProofError, verify_consistency

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "Reason",
    "SignerKey",
    "VerifierKey",
    "Witness",
    "format_signer_key",
    "format_verifier_key",
    "key_id",
    "parse_signer_key",
    "parse_verifier_key",
    "sign_checkpoint",
    "sign_note",
    "verify_checkpoint",
    "verify_note",
]

ED25519_SIGNATURE_TYPE = 0x01
"""The signed-note signature type identifier byte of Ed25519."""

MAX_SIGNATURES = 100
"""At most this many signature lines are read from a note (the spec asks for at least 16)."""

_SIGNATURE_PREFIX = "\N{EM DASH} "
_SIGNER_KEY_PREFIX = "PRIVATE+KEY+"
_KEY_ID_PATTERN = re.compile(r"[0-9a-fA-F]{8}")
_TREE_SIZE_PATTERN = re.compile(r"0|[1-9][0-9]{0,19}")
_MAX_TREE_SIZE = 2**64 - 1  # tree sizes are uint64 in every other implementation
_ED25519_SIGNATURE_SIZE = 64
_ED25519_KEY_SIZE = 32
_STATE_FORMAT = "matchhub-audit-witness/1"


class Reason(StrEnum):
    """Why a note, checkpoint or key was refused: a stable machine-readable code."""

    MALFORMED_NOTE = "malformed_note"
    """Not a signed note: no blank line before the signatures, a bad signature line, etc."""
    MALFORMED_CHECKPOINT = "malformed_checkpoint"
    """A validly signed note whose text is not a checkpoint."""
    MALFORMED_KEY = "malformed_key"
    """A verifier or signer key string that does not parse, or whose key ID does not match."""
    UNKNOWN_KEY = "unknown_key"
    """The note carries no signature by the trusted key (name and key ID both match)."""
    BAD_SIGNATURE = "bad_signature"
    """A signature that names the trusted key does not verify: the note was tampered with."""
    WRONG_ORIGIN = "wrong_origin"
    """A valid checkpoint of another log than the one expected."""
    ROLLBACK = "rollback"
    """A checkpoint smaller than the one the witness already accepted."""
    FORK = "fork"
    """Two checkpoints of the same size with different roots: the log was forked."""
    INCONSISTENT = "inconsistent"
    """A larger checkpoint whose consistency proof from the accepted one does not verify."""
    BAD_STATE = "bad_state"
    """The witness's saved state cannot be read or does not verify."""


class CheckpointError(ValueError):
    """A note, checkpoint, key or witness update was refused.

    ``evidence`` holds the signed notes that show the problem when there are two of them (the
    checkpoint the witness had accepted, then the one it refused). For :attr:`Reason.FORK` the
    pair is proof, checkable by anyone with the verifier key, that the holder of the signing key
    signed two different histories.
    """

    def __init__(self, reason: Reason, message: str, *, evidence: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.evidence = evidence


# --- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifierKey:
    """A trusted Ed25519 note key: its name, its 32-bit key ID and its raw public key."""

    name: str
    key_id: int
    public_key_bytes: bytes

    @property
    def public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.public_key_bytes)

    def __str__(self) -> str:
        return format_verifier_key(self.name, self.public_key)


@dataclass(frozen=True, eq=False)
class SignerKey:
    """A note signing key: its name and Ed25519 private key (never shown in the repr)."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)

    @property
    def verifier_key(self) -> VerifierKey:
        public_key = self.private_key.public_key()
        return VerifierKey(self.name, key_id(self.name, public_key), _raw_public(public_key))


def key_id(name: str, public_key: Ed25519PublicKey) -> int:
    """Return the note key ID of an Ed25519 key: the first four bytes, big-endian, of
    SHA-256(name || 0x0A || 0x01 || public key) (c2sp.org/signed-note, "Ed25519 signatures").

    The ID only tells keys apart; it is not a security boundary, because a signature is always
    checked with the configured public key itself.
    """
    return _key_id(name, _raw_public(public_key))


def format_verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """Return the verifier key string ``<name>+<key ID hex>+<base64(0x01 || public key)>``."""
    _check_key_name(name, Reason.MALFORMED_KEY)
    raw = _raw_public(public_key)
    encoded = base64.b64encode(bytes([ED25519_SIGNATURE_TYPE]) + raw).decode("ascii")
    return f"{name}+{_key_id(name, raw):08x}+{encoded}"


def parse_verifier_key(text: str) -> VerifierKey:
    """Parse a verifier key string, checking that its key ID matches its name and key.

    Raises:
        CheckpointError: with :attr:`Reason.MALFORMED_KEY`.
    """
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise CheckpointError(Reason.MALFORMED_KEY, "verifier key must be <name>+<id>+<key>")
    name, id_hex, key_b64 = parts
    raw = _parse_key_body(name, id_hex, key_b64, "verifier key")
    return VerifierKey(name, int(id_hex, 16), raw)


def format_signer_key(name: str, private_key: Ed25519PrivateKey) -> str:
    """Return the signer key string ``PRIVATE+KEY+<name>+<key ID hex>+<base64(0x01 || seed)>``.

    The result is a secret: store it as one, and never log it.
    """
    _check_key_name(name, Reason.MALFORMED_KEY)
    seed = private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    encoded = base64.b64encode(bytes([ED25519_SIGNATURE_TYPE]) + seed).decode("ascii")
    raw = _raw_public(private_key.public_key())
    return f"{_SIGNER_KEY_PREFIX}{name}+{_key_id(name, raw):08x}+{encoded}"


def parse_signer_key(text: str) -> SignerKey:
    """Parse a signer key string, checking that its key ID matches its name and key.

    Raises:
        CheckpointError: with :attr:`Reason.MALFORMED_KEY`; the message never holds the key.
    """
    if not text.startswith(_SIGNER_KEY_PREFIX):
        raise CheckpointError(Reason.MALFORMED_KEY, "signer key must start with PRIVATE+KEY+")
    parts = text[len(_SIGNER_KEY_PREFIX) :].split("+", 2)
    if len(parts) != 3:
        raise CheckpointError(
            Reason.MALFORMED_KEY, "signer key must be PRIVATE+KEY+<name>+<id>+<key>"
        )
    name, id_hex, key_b64 = parts
    seed = _decode_typed_key(key_b64, "signer key")
    private_key = Ed25519PrivateKey.from_private_bytes(seed)
    _check_key_id(name, id_hex, _raw_public(private_key.public_key()), "signer key")
    return SignerKey(name, private_key)


# --- notes ----------------------------------------------------------------------------------


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign ``text`` as a C2SP signed note with one Ed25519 signature line.

    ``text`` must be non-empty, end in a newline and hold no control character but newline.

    Raises:
        CheckpointError: with :attr:`Reason.MALFORMED_NOTE` or :attr:`Reason.MALFORMED_KEY`.
    """
    _check_note_text(text)
    _check_key_name(name, Reason.MALFORMED_KEY)
    raw = _raw_public(private_key.public_key())
    signature = private_key.sign(text.encode("utf-8"))
    blob = _key_id(name, raw).to_bytes(4, "big") + signature
    return f"{text}\n{_SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode('ascii')}\n"


def verify_note(note: str | bytes, verifier_key: VerifierKey | str) -> str:
    """Verify a signed note with one trusted key and return its text.

    As c2sp.org/signed-note requires, signatures by other keys (another name or another key ID)
    are ignored, every signature by the trusted key must verify, and at least one must exist.

    Raises:
        CheckpointError: with :attr:`Reason.MALFORMED_NOTE`, :attr:`Reason.UNKNOWN_KEY`,
            :attr:`Reason.BAD_SIGNATURE` or :attr:`Reason.MALFORMED_KEY`.
    """
    key = _as_verifier_key(verifier_key)
    text, signatures = _split_note(note)
    message = text.encode("utf-8")
    public_key = key.public_key
    verified = False
    for name, signer_id, signature in signatures:
        if name != key.name or signer_id != key.key_id:
            continue
        if len(signature) != _ED25519_SIGNATURE_SIZE:
            raise CheckpointError(
                Reason.BAD_SIGNATURE, f"signature by key {_key_label(name, signer_id)} is malformed"
            )
        try:
            public_key.verify(signature, message)
        except InvalidSignature:
            raise CheckpointError(
                Reason.BAD_SIGNATURE,
                f"signature by key {_key_label(name, signer_id)} does not verify",
            ) from None
        verified = True
    if not verified:
        found = ", ".join(_key_label(n, i) for n, i, _ in signatures)
        raise CheckpointError(
            Reason.UNKNOWN_KEY,
            f"note has no signature by key {_key_label(key.name, key.key_id)} (signed by: {found})",
        )
    return text


# --- checkpoints ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A transparency log checkpoint (c2sp.org/tlog-checkpoint): the log's tree head.

    ``extensions`` are the optional lines after the root hash. They are kept so the text can be
    rebuilt byte for byte, but they are opaque: nothing here interprets them, and the spec
    advises against them because log monitors cannot audit them.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or _has_control_character(self.origin):
            raise CheckpointError(
                Reason.MALFORMED_CHECKPOINT,
                "checkpoint origin must be non-empty and hold no newline or control character",
            )
        if (
            isinstance(self.size, bool)
            or not isinstance(self.size, int)
            or not 0 <= self.size <= _MAX_TREE_SIZE
        ):
            raise CheckpointError(
                Reason.MALFORMED_CHECKPOINT, "checkpoint tree size must be an integer in uint64"
            )
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise CheckpointError(
                Reason.MALFORMED_CHECKPOINT, f"checkpoint root hash must be {HASH_SIZE} bytes"
            )
        for line in self.extensions:
            if not line or _has_control_character(line):
                raise CheckpointError(
                    Reason.MALFORMED_CHECKPOINT,
                    "checkpoint extension lines must be non-empty and hold no control character",
                )

    def to_text(self) -> str:
        """Return the note text: origin, size and root lines, then any extension lines."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        lines.extend(self.extensions)
        return "".join(f"{line}\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text. Only call it on text whose signature was verified.

        Raises:
            CheckpointError: with :attr:`Reason.MALFORMED_CHECKPOINT`.
        """
        if not text.endswith("\n"):
            raise CheckpointError(
                Reason.MALFORMED_CHECKPOINT, "checkpoint text must end with a newline"
            )
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(
                Reason.MALFORMED_CHECKPOINT,
                "checkpoint text must have origin, tree size and root hash lines",
            )
        origin, size_line, root_line, *extensions = lines
        if not _TREE_SIZE_PATTERN.fullmatch(size_line):
            raise CheckpointError(
                Reason.MALFORMED_CHECKPOINT,
                "checkpoint tree size must be decimal digits without leading zeros",
            )
        root = _b64decode_canonical(root_line)
        if root is None or len(root) != HASH_SIZE:
            raise CheckpointError(
                Reason.MALFORMED_CHECKPOINT,
                f"checkpoint root hash must be the base64 of {HASH_SIZE} bytes",
            )
        return cls(origin, int(size_line), root, tuple(extensions))


def sign_checkpoint(
    origin: str,
    size: int,
    root: bytes,
    name: str,
    private_key: Ed25519PrivateKey,
    *,
    extensions: Sequence[str] = (),
) -> str:
    """Return the signed note of the checkpoint (origin, size, root).

    The key name should be the origin (c2sp.org/tlog-checkpoint); it is not forced, so that a
    log can rotate keys or add a witness cosignature under another name.

    Raises:
        CheckpointError: with :attr:`Reason.MALFORMED_CHECKPOINT` or :attr:`Reason.MALFORMED_KEY`.
    """
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    return sign_note(checkpoint.to_text(), name, private_key)


def verify_checkpoint(
    note: str | bytes, verifier_key: VerifierKey | str, *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint and return it; with ``origin``, require that log.

    The signature is checked before the text is parsed: the text of a note means nothing until
    a trusted key has vouched for it.

    Raises:
        CheckpointError: with the :class:`Reason` for the failure.
    """
    checkpoint = Checkpoint.from_text(verify_note(note, verifier_key))
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(
            Reason.WRONG_ORIGIN,
            f"checkpoint is for origin {checkpoint.origin!r}, expected {origin!r}",
        )
    return checkpoint


# --- witness --------------------------------------------------------------------------------


class Witness:
    """Remembers the last checkpoint it accepted from one log, and accepts only its extensions.

    This is how a connector or an auditor keeps the broker honest even against the holder of
    the log's signing key. :meth:`update` accepts a new checkpoint only if it is signed by the
    log's key for the expected origin, and

    * it is larger than the saved one and the consistency proof from the saved tree to it
      verifies (the old log is a prefix of the new one: nothing removed, changed or reordered);
    * or it has the same size and the same root (nothing new).

    A smaller checkpoint is a rollback (the log is showing an older state, hiding what came
    after); the same size with another root is a fork (two histories signed by one key, and the
    pair of notes in :attr:`CheckpointError.evidence` proves it). The very first checkpoint is
    accepted on its signature alone (trust on first use); an auditor who needs more than that
    starts from a checkpoint obtained out of band, or from the empty log.

    The state is a small JSON file holding the last accepted signed note. It is replaced
    atomically and re-verified when loaded, so a crash never leaves half a state and a damaged
    or edited file is refused rather than trusted. One witness process should own a state file:
    two processes updating the same file can each accept a checkpoint the other has not seen.
    """

    def __init__(
        self, state_path: str | os.PathLike[str], verifier_key: VerifierKey | str, origin: str
    ) -> None:
        """Load the witness state from ``state_path``, if the file exists.

        Raises:
            CheckpointError: with :attr:`Reason.BAD_STATE` if the file exists but cannot be
                read or does not verify with ``verifier_key`` for ``origin``.
        """
        self._path = Path(state_path)
        self._key = _as_verifier_key(verifier_key)
        self._origin = origin
        self._note: str | None = None
        self._checkpoint: Checkpoint | None = None
        self._load()

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The last accepted checkpoint, or None before the first update."""
        return self._checkpoint

    @property
    def note(self) -> str | None:
        """The signed note of the last accepted checkpoint, or None before the first update."""
        return self._note

    def update(self, note: str, consistency_proof: Sequence[bytes] = ()) -> Checkpoint:
        """Verify a new signed checkpoint against the saved one, save it, and return it.

        ``consistency_proof`` goes from the saved tree size to the new one (RFC 9162 section
        2.1.4); it is only read when the new tree is larger than the saved one.

        Raises:
            CheckpointError: the signature or origin is wrong (the state is unchanged), or with
                :attr:`Reason.ROLLBACK`, :attr:`Reason.FORK` or :attr:`Reason.INCONSISTENT`,
                whose ``evidence`` is (saved note, refused note).
        """
        new = verify_checkpoint(note, self._key, origin=self._origin)
        old, old_note = self._checkpoint, self._note
        if old is None or old_note is None:
            self._save(note, new)
            return new
        evidence = (old_note, note)
        if new.size < old.size:
            raise CheckpointError(
                Reason.ROLLBACK,
                f"rollback from size {old.size} to {new.size}",
                evidence=evidence,
            )
        if new.size == old.size:
            if not hmac.compare_digest(new.root, old.root):
                raise CheckpointError(
                    Reason.FORK, f"fork: same size {new.size}, different root", evidence=evidence
                )
            return old
        try:
            verify_consistency(old.size, new.size, old.root, new.root, consistency_proof)
        except ProofError as exc:
            raise CheckpointError(
                Reason.INCONSISTENT,
                f"checkpoint at size {new.size} is not consistent with the saved checkpoint "
                f"at size {old.size}: {exc}",
                evidence=evidence,
            ) from exc
        self._save(note, new)
        return new

    def _load(self) -> None:
        try:
            raw = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(
                Reason.BAD_STATE, f"cannot read witness state {self._path}: {exc}"
            ) from exc
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise CheckpointError(
                Reason.BAD_STATE, f"witness state {self._path} is not JSON"
            ) from exc
        if not isinstance(data, dict) or data.get("format") != _STATE_FORMAT:
            raise CheckpointError(
                Reason.BAD_STATE, f"witness state {self._path} is not in format {_STATE_FORMAT}"
            )
        note = data.get("note")
        if not isinstance(note, str):
            raise CheckpointError(Reason.BAD_STATE, f"witness state {self._path} has no note")
        try:
            checkpoint = verify_checkpoint(note, self._key, origin=self._origin)
        except CheckpointError as exc:
            raise CheckpointError(
                Reason.BAD_STATE,
                f"witness state {self._path} does not verify: {exc.message}",
            ) from exc
        # The size and root are saved beside the note for people reading the file; they must
        # say the same as the signed note, which is what counts.
        if data.get("size") != checkpoint.size or data.get("root") != _b64(checkpoint.root):
            raise CheckpointError(
                Reason.BAD_STATE,
                f"witness state {self._path} does not match its signed note",
            )
        self._note, self._checkpoint = note, checkpoint

    def _save(self, note: str, checkpoint: Checkpoint) -> None:
        state = {
            "format": _STATE_FORMAT,
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root": _b64(checkpoint.root),
            "note": note,
        }
        _write_atomically(self._path, json.dumps(state, indent=2, ensure_ascii=False) + "\n")
        # Only a checkpoint that is safely on disk counts as accepted.
        self._note, self._checkpoint = note, checkpoint


# --- helpers --------------------------------------------------------------------------------


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _key_id(name: str, raw_public_key: bytes) -> int:
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ED25519_SIGNATURE_TYPE]) + raw_public_key
    ).digest()
    return int.from_bytes(digest[:4], "big")


def _key_label(name: str, identifier: int) -> str:
    return f"{name}+{identifier:08x}"


def _as_verifier_key(key: VerifierKey | str) -> VerifierKey:
    return key if isinstance(key, VerifierKey) else parse_verifier_key(key)


def _check_key_name(name: str, reason: Reason) -> None:
    # c2sp.org/signed-note: non-empty, no Unicode space, no "+" (it separates key fields).
    if not name or "+" in name or any(c.isspace() for c in name) or _has_control_character(name):
        raise CheckpointError(reason, f"key name {name!r} must be non-empty, without spaces or '+'")


def _decode_typed_key(key_b64: str, what: str) -> bytes:
    decoded = _b64decode_canonical(key_b64)
    if (
        decoded is None
        or len(decoded) != 1 + _ED25519_KEY_SIZE
        or decoded[0] != ED25519_SIGNATURE_TYPE
    ):
        raise CheckpointError(
            Reason.MALFORMED_KEY, f"{what} must hold an Ed25519 key (type 0x01, 32 bytes)"
        )
    return decoded[1:]


def _check_key_id(name: str, id_hex: str, raw_public_key: bytes, what: str) -> None:
    _check_key_name(name, Reason.MALFORMED_KEY)
    if not _KEY_ID_PATTERN.fullmatch(id_hex):
        raise CheckpointError(Reason.MALFORMED_KEY, f"{what} ID must be 8 hex digits")
    if int(id_hex, 16) != _key_id(name, raw_public_key):
        raise CheckpointError(
            Reason.MALFORMED_KEY, f"{what} ID {id_hex} does not match its name and key"
        )


def _parse_key_body(name: str, id_hex: str, key_b64: str, what: str) -> bytes:
    raw = _decode_typed_key(key_b64, what)
    _check_key_id(name, id_hex, raw, what)
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise CheckpointError(Reason.MALFORMED_KEY, f"{what} is not an Ed25519 key") from exc
    return raw


def _has_control_character(text: str) -> bool:
    return any(c < " " for c in text)


def _check_note_text(text: str) -> None:
    if not text or not text.endswith("\n"):
        raise CheckpointError(Reason.MALFORMED_NOTE, "note text must be non-empty and end in \\n")
    if any(c < " " and c != "\n" for c in text):
        raise CheckpointError(Reason.MALFORMED_NOTE, "note text holds a control character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CheckpointError(Reason.MALFORMED_NOTE, "note text is not valid UTF-8") from exc


def _split_note(note: str | bytes) -> tuple[str, list[tuple[str, int, bytes]]]:
    """Split a signed note into its text and its (key name, key ID, signature) lines."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError(Reason.MALFORMED_NOTE, "note is not valid UTF-8") from exc
    # The text is separated from the signatures by the last blank line, and keeps its newline.
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError(Reason.MALFORMED_NOTE, "note has no blank line before signatures")
    text, block = note[: split + 1], note[split + 2 :]
    _check_note_text(text)
    if not block or not block.endswith("\n"):
        raise CheckpointError(
            Reason.MALFORMED_NOTE, "note signatures must be lines ending in a newline"
        )
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(
            Reason.MALFORMED_NOTE, f"note has more than {MAX_SIGNATURES} signatures"
        )
    signatures: list[tuple[str, int, bytes]] = []
    for line in lines:
        if not line.startswith(_SIGNATURE_PREFIX):
            raise CheckpointError(
                Reason.MALFORMED_NOTE, "note signature line must start with an em dash and a space"
            )
        name, _, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        _check_key_name(name, Reason.MALFORMED_NOTE)
        blob = _b64decode_canonical(encoded)
        if blob is None or len(blob) < 5:
            raise CheckpointError(
                Reason.MALFORMED_NOTE,
                f"note signature by {name!r} must be base64 of a key ID and a signature",
            )
        signatures.append((name, int.from_bytes(blob[:4], "big"), blob[4:]))
    return text, signatures


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode_canonical(text: str) -> bytes | None:
    """Strict standard base64: padded, no stray characters, and the one encoding of its bytes.

    Insisting on the canonical encoding means one checkpoint has exactly one text, so two
    texts that differ can never mean the same tree head.
    """
    try:
        decoded = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return None
    return decoded if _b64(decoded) == text else None


def _write_atomically(path: Path, content: str) -> None:
    """Replace ``path`` with ``content`` so that a crash leaves the old file or the new one."""
    directory = path.parent
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    # Make the rename itself durable; directories cannot be opened this way on every platform.
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
