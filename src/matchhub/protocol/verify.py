"""Offline verification of an exported audit log: from the export and the public key alone,
with no database and no trust in the broker.

It recomputes every leaf hash from the stored canonical bytes, every root from the leaves,
checks each checkpoint's signature and that its root is the root of the entries before it, and,
given a checkpoint the auditor saved earlier, that today's log still contains that history. So an
edited entry, a deleted tail, a rollback, a checkpoint signed by another key, and even a rewrite
re-signed with the real key (against a saved checkpoint) are each reported with what and where.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from matchhub.protocol import merkle
from matchhub.protocol.checkpoint import (
    Checkpoint,
    CheckpointError,
    VerifierKey,
    format_verifier_key,
    parse_verifier_key,
    verify_checkpoint,
)

PEM_PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----"


class VerificationError(Exception):
    """The export does not verify; the message says what and where."""


class UnusableKey(ValueError):
    """The verifier key given is not one: nothing was checked, and the log is not to blame."""


KEY_LIMIT = 64 * 1024  # a verifier key is one line; a PEM public key a few


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """A regular file's bytes, at most ``limit`` of them. Never waits on a FIFO or a device
    given by mistake (OSError, as for a missing file); a larger file is a ValueError."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file", str(path))
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read() if limit is None else file.read(limit + 1)
    finally:
        os.close(fd)
    if limit is not None and len(data) > limit:
        raise ValueError(f"{path.name} is larger than {limit} bytes")
    return data


def read_key(path: Path) -> str:
    """The verifier key in ``path`` (a ``name+id+key`` line or the PEM public key ``matchhub
    init`` writes), checked as a key before any export is read. Raises :class:`UnusableKey`,
    also for a file that cannot be read."""
    try:
        text = read_regular(path, KEY_LIMIT).decode("ascii").strip()
    except OSError as exc:
        raise UnusableKey(f"{path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnusableKey(f"{path.name} is not a verifier key ({exc})") from None
    if text.startswith(PEM_PUBLIC_KEY):
        _public_key(text)
    else:
        try:
            parse_verifier_key(text)
        except CheckpointError as exc:
            raise UnusableKey(f"{path.name} is not a verifier key: {exc}") from None
    return text


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    root: bytes = merkle.EMPTY_ROOT
    saved_checked: bool = False
    notes: list[str] = field(default_factory=list)
    # Deletion receipts (kind "retention"): records deleted, per record class.
    receipts: int = 0
    deleted: dict[str, int] = field(default_factory=dict)


RECEIPT_KIND = "retention"
RECEIPT_FIELDS = ("record_class", "count", "ids", "policy", "cutoff", "when")


def _check_receipt(seq: int, entry: dict[str, object], report: Report) -> None:
    """A deletion receipt says what it deleted: a class, a count that is the number of its
    ids, the policy and when. One that does not is reported like any other broken entry."""
    missing = [name for name in RECEIPT_FIELDS if name not in entry]
    ids, count, record_class = entry.get("ids"), entry.get("count"), entry.get("record_class")
    if missing or not isinstance(ids, list) or not isinstance(record_class, str):
        raise VerificationError(
            f"entry {seq}: a deletion receipt without {', '.join(missing) or 'its ids'}"
        )
    if count != len(ids) or len(set(map(str, ids))) != len(ids):
        raise VerificationError(
            f"entry {seq}: a deletion receipt counts {count} records but names {len(ids)}"
        )
    report.receipts += 1
    report.deleted[record_class] = report.deleted.get(record_class, 0) + len(ids)


def _lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) of a JSON-lines file, blank lines left out."""
    try:
        text = read_regular(path).decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationError(f"{path.name} is not UTF-8 text") from None
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _entries(path: Path) -> list[tuple[int, bytes, bytes | None]]:
    rows: list[tuple[int, bytes, bytes | None]] = []
    for line_number, line in _lines(path):
        try:
            item = json.loads(line)
            seq, body = int(item["seq"]), str(item["body"]).encode()
            leaf = bytes.fromhex(item["leaf_hash"]) if "leaf_hash" in item else None
        except (ValueError, KeyError, TypeError):
            raise VerificationError(f"entries.jsonl line {line_number} is malformed") from None
        rows.append((seq, body, leaf))
    return rows


def verify_export(
    folder: Path, verifier_key: VerifierKey | str, saved_checkpoint: str | None = None
) -> Report:
    report = Report()
    rows = _entries(folder / "entries.jsonl")
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
    frontier = merkle.CompactRange()
    for position, (seq, body, recorded) in enumerate(rows):
        if seq != position:
            raise VerificationError(
                f"entry {position} is missing: the log jumps from seq {position - 1} to {seq} "
                "(an entry was deleted or reordered)"
            )
        try:
            parsed = json.loads(body)
        except ValueError:
            raise VerificationError(f"entry {seq}: its body is not JSON") from None
        if parsed.get("seq") != seq:
            raise VerificationError(f"entry {seq}: its body says seq {parsed.get('seq')}")
        if parsed.get("kind") == RECEIPT_KIND:
            _check_receipt(seq, parsed, report)
        leaf = merkle.leaf_hash(body)
        if recorded is not None and recorded != leaf:
            raise VerificationError(
                f"entry {seq} was edited: its body does not hash to its recorded leaf hash"
            )
        frontier.append(leaf)
        roots[frontier.size] = frontier.root()
    report.entries = len(rows)
    report.root = roots[len(rows)]

    notes = _checkpoint_notes(folder / "checkpoints.jsonl")
    if not notes:
        raise VerificationError("the export holds no signed checkpoint")
    key = _verifier(verifier_key, notes[0])
    for note in notes:
        checkpoint = _verified(note, key, "checkpoint in the export")
        _check_against(checkpoint, roots, len(rows), "checkpoint")
        report.checkpoints += 1
    if report.checkpoints and checkpoint.size != len(rows):
        report.notes.append(
            f"the newest checkpoint covers {checkpoint.size} of {len(rows)} entries"
        )
    if saved_checkpoint is not None:
        saved = _verified(saved_checkpoint, key, "saved checkpoint")
        if saved.size > len(rows):
            raise VerificationError(
                f"rollback: your saved checkpoint covers {saved.size} entries but the log holds "
                f"only {len(rows)} (the tail was deleted or the log rolled back)"
            )
        if roots[saved.size] != saved.root:
            raise VerificationError(
                f"history rewritten: the first {saved.size} entries no longer hash to the root "
                "of the checkpoint you saved (an entry before it was changed, even if the new "
                "log is signed with the real key)"
            )
        report.saved_checked = True
    return report


def _checkpoint_notes(path: Path) -> list[str]:
    notes: list[str] = []
    for line_number, line in _lines(path):
        try:
            notes.append(str(json.loads(line)["note"]))
        except (ValueError, KeyError, TypeError):
            raise VerificationError(f"checkpoints.jsonl line {line_number} is malformed") from None
    return notes


def _verifier(key: VerifierKey | str, first_note: str) -> VerifierKey | str:
    """The verifier key as given, or built from the PEM public key ``matchhub init`` writes
    (``audit-signing-key.pub``). A PEM key carries no name; a note's signature names its key
    after the log's origin, the note's first line. Taking the name from the export is safe:
    only a signature by this very public key verifies under it."""
    if not isinstance(key, str) or not key.lstrip().startswith(PEM_PUBLIC_KEY):
        return key
    public = _public_key(key)
    try:
        return format_verifier_key(first_note.split("\n", 1)[0], public)
    except CheckpointError as exc:
        raise VerificationError(f"checkpoint in the export: {exc}") from None


def _public_key(pem: str) -> Ed25519PublicKey:
    try:
        public = load_pem_public_key(pem.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise UnusableKey("the key file is not a PEM public key") from None
    if not isinstance(public, Ed25519PublicKey):
        raise UnusableKey("the key file is not an Ed25519 public key")
    return public


def _verified(note: str, key: VerifierKey | str, what: str) -> Checkpoint:
    try:
        return verify_checkpoint(note, key)
    except CheckpointError as exc:
        raise VerificationError(f"{what}: {exc.reason.value}: {exc}") from None


def _check_against(checkpoint: Checkpoint, roots: dict[int, bytes], count: int, what: str) -> None:
    if checkpoint.size > count:
        raise VerificationError(
            f"{what} at size {checkpoint.size}: the export holds only {count} entries "
            "(entries after the last one were deleted)"
        )
    if roots[checkpoint.size] != checkpoint.root:
        raise VerificationError(
            f"{what} at size {checkpoint.size}: the entries before it do not hash to its "
            "signed root (an entry before it was edited, deleted or inserted)"
        )
