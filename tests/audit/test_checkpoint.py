"""Tests of signed notes, checkpoints and the witness.

Interoperability is checked against golang.org/x/mod/sumdb/note's own test vectors (the keys
and signatures of ``note_test.go``): Ed25519 signatures are deterministic, so signing the same
text with the same key must give Go's signature byte for byte.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from matchhub.protocol.checkpoint import (
    Checkpoint,
    CheckpointError,
    Reason,
    VerifierKey,
    Witness,
    format_signer_key,
    format_verifier_key,
    key_id,
    parse_signer_key,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
    verify_note,
)
from matchhub.protocol.merkle import consistency_proof, leaf_hash, root

# --- golang.org/x/mod/sumdb/note note_test.go -------------------------------------------------

GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_ENOCH_KEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
    "qdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnW"
    "Lox33WWd1RvMc+QQ=\n"
)
GO_NOTE = GO_TEXT + "\n" + GO_PETER_SIG

# --- c2sp.org/tlog-checkpoint's example body -------------------------------------------------

SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"

ORIGIN = "audit.matchhub.test/log"
LEAVES = [leaf_hash(f"audit record {i}".encode()) for i in range(40)]


def reason_of(call: Callable[..., object], *args: object, **kwargs: object) -> Reason:
    with pytest.raises(CheckpointError) as info:
        call(*args, **kwargs)
    return info.value.reason


@pytest.fixture(scope="module")
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def other_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def verifier(log_key: Ed25519PrivateKey) -> str:
    return format_verifier_key(ORIGIN, log_key.public_key())


def signed(key: Ed25519PrivateKey, size: int, leaves: list[bytes] = LEAVES) -> str:
    return sign_checkpoint(ORIGIN, size, root(leaves[:size]), ORIGIN, key)


# --- keys and notes: Go interoperability ------------------------------------------------------


def test_go_signer_key_parses_and_formats_back() -> None:
    signer = parse_signer_key(GO_SIGNER_KEY)
    assert signer.name == "PeterNeumann"
    assert format_signer_key(signer.name, signer.private_key) == GO_SIGNER_KEY
    assert str(signer.verifier_key) == GO_VERIFIER_KEY
    assert signer.verifier_key == parse_verifier_key(GO_VERIFIER_KEY)
    assert key_id(signer.name, signer.private_key.public_key()) == 0xC74F20A3
    assert "AYEKF" not in repr(signer)


def test_go_verifier_key_parses() -> None:
    key = parse_verifier_key(GO_VERIFIER_KEY)
    assert (key.name, key.key_id) == ("PeterNeumann", 0xC74F20A3)
    assert format_verifier_key(key.name, key.public_key) == GO_VERIFIER_KEY


def test_signing_reproduces_the_go_signature() -> None:
    signer = parse_signer_key(GO_SIGNER_KEY)
    assert sign_note(GO_TEXT, signer.name, signer.private_key) == GO_NOTE


def test_go_notes_verify() -> None:
    assert verify_note(GO_NOTE, GO_VERIFIER_KEY) == GO_TEXT
    assert verify_note(GO_NOTE.encode(), GO_VERIFIER_KEY) == GO_TEXT
    both = GO_TEXT + "\n" + GO_PETER_SIG + GO_ENOCH_SIG
    # Each key finds its own signature and ignores the other, as the spec requires.
    assert verify_note(both, GO_VERIFIER_KEY) == GO_TEXT
    assert verify_note(both, GO_ENOCH_KEY) == GO_TEXT
    assert reason_of(verify_note, GO_TEXT + "\n" + GO_ENOCH_SIG, GO_VERIFIER_KEY) == (
        Reason.UNKNOWN_KEY
    )


def test_go_mangled_verifier_keys_are_rejected() -> None:
    """Every proper substring and every one-character change of a key is refused (Go's test)."""
    key = GO_VERIFIER_KEY
    for start in range(len(key)):
        for end in range(start + 1, len(key) + 1):
            if (start, end) != (0, len(key)):
                with pytest.raises(CheckpointError):
                    parse_verifier_key(key[start:end])
    for position in range(len(key)):
        mangled = key[:position] + chr(ord(key[position]) + 1) + key[position + 1 :]
        assert reason_of(parse_verifier_key, mangled) is Reason.MALFORMED_KEY, mangled
    # A key of the wrong length and an unknown algorithm, each with a matching key ID.
    for bad in (
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ):
        assert reason_of(parse_verifier_key, bad) is Reason.MALFORMED_KEY


def test_go_mangled_signer_keys_are_rejected() -> None:
    key = GO_SIGNER_KEY
    for position in range(len(key)):
        mangled = key[:position] + chr(ord(key[position]) + 1) + key[position + 1 :]
        assert reason_of(parse_signer_key, mangled) is Reason.MALFORMED_KEY, mangled
    for end in range(len(key)):
        with pytest.raises(CheckpointError):
            parse_signer_key(key[:end])


def test_key_errors_do_not_echo_the_private_key() -> None:
    mangled = GO_SIGNER_KEY.replace("c74f20a3", "c74f20a4")
    with pytest.raises(CheckpointError) as info:
        parse_signer_key(mangled)
    assert "AYEKF" not in str(info.value)


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT,
        GO_TEXT + "\n",
        GO_TEXT + "\n" + GO_PETER_SIG[:-1],
        "\x01" + GO_TEXT + "\n" + GO_PETER_SIG,
        GO_TEXT + "\n" + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZS"
        "NXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        GO_TEXT + "\n" + GO_PETER_SIG + "Unexpected line.\n",
        GO_TEXT + "\n" + GO_PETER_SIG * 101,
        GO_TEXT + "\n" + GO_PETER_SIG.replace("—", "-"),
        GO_TEXT + "\n" + GO_PETER_SIG.replace("=\n", "\n"),
        GO_TEXT + "\n" + GO_PETER_SIG.replace("x08go/", "x08go*"),
        GO_TEXT + "\n" + "— PeterNeumann AAAA\n",
        GO_TEXT + "\n" + "— Peter+Neumann " + GO_PETER_SIG.split(" ")[2],
        GO_TEXT.replace("problem,", "problem,\t") + "\n" + GO_PETER_SIG,
    ],
)
def test_go_malformed_notes_are_rejected(note: str) -> None:
    assert reason_of(verify_note, note, GO_VERIFIER_KEY) is Reason.MALFORMED_NOTE


def test_invalid_utf8_is_a_malformed_note() -> None:
    note = b"\xff" + GO_NOTE.encode()
    assert reason_of(verify_note, note, GO_VERIFIER_KEY) is Reason.MALFORMED_NOTE


def test_go_invalid_signature_is_rejected() -> None:
    sig = GO_PETER_SIG
    # Four base64 characters inserted into the signature (Go's test, counted in characters).
    assert reason_of(
        verify_note, GO_TEXT + "\n" + sig[:58] + "ABCD" + sig[58:], GO_VERIFIER_KEY
    ) is (Reason.BAD_SIGNATURE)
    # A bad signature by the trusted key spoils the note even beside a good one.
    blob = bytearray(base64.b64decode(sig.split(" ")[2]))
    blob[10] ^= 1
    bad = f"— PeterNeumann {base64.b64encode(bytes(blob)).decode()}\n"
    assert reason_of(verify_note, GO_TEXT + "\n" + GO_PETER_SIG + bad, GO_VERIFIER_KEY) is (
        Reason.BAD_SIGNATURE
    )


def test_sign_note_refuses_bad_text_and_names(log_key: Ed25519PrivateKey) -> None:
    assert reason_of(sign_note, "no newline", ORIGIN, log_key) is Reason.MALFORMED_NOTE
    assert reason_of(sign_note, "", ORIGIN, log_key) is Reason.MALFORMED_NOTE
    assert reason_of(sign_note, "a\rb\n", ORIGIN, log_key) is Reason.MALFORMED_NOTE
    assert reason_of(sign_note, "a\ud800\n", ORIGIN, log_key) is Reason.MALFORMED_NOTE
    for name in ("", "a b", "a+b", "a\u00a0b", "a\nb"):
        assert reason_of(sign_note, "text\n", name, log_key) is Reason.MALFORMED_KEY


def test_notes_with_blank_lines_in_the_text_verify(log_key: Ed25519PrivateKey) -> None:
    """The text ends at the last blank line, so blank lines inside the text are fine."""
    text = "Ognuno sta solo sul cuor della terra\n\ned è subito sera.\n\n"
    key = format_verifier_key("poet", log_key.public_key())
    assert verify_note(sign_note(text, "poet", log_key), key) == text


# --- checkpoints ------------------------------------------------------------------------------


def test_checkpoint_body_matches_the_spec_example() -> None:
    checkpoint = Checkpoint.from_text(SPEC_BODY)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == ()
    assert checkpoint.to_text() == SPEC_BODY


def test_checkpoint_round_trip(log_key: Ed25519PrivateKey, verifier: str) -> None:
    note = signed(log_key, 17)
    body, _, signature_line = note.partition("\n\n")
    assert body + "\n" == f"{ORIGIN}\n17\n{base64.b64encode(root(LEAVES[:17])).decode()}\n"
    assert signature_line.startswith(f"— {ORIGIN} ")
    assert signature_line.endswith("\n")
    assert signature_line.count("\n") == 1
    blob = base64.b64decode(signature_line.split(" ")[2])
    assert len(blob) == 4 + 64
    assert int.from_bytes(blob[:4], "big") == key_id(ORIGIN, log_key.public_key())

    checkpoint = verify_checkpoint(note, verifier, origin=ORIGIN)
    assert checkpoint == Checkpoint(ORIGIN, 17, root(LEAVES[:17]))
    assert verify_checkpoint(note, parse_verifier_key(verifier)) == checkpoint


def test_checkpoint_extension_lines_are_kept(log_key: Ed25519PrivateKey, verifier: str) -> None:
    note = sign_checkpoint(
        ORIGIN, 3, root(LEAVES[:3]), ORIGIN, log_key, extensions=["ext one", "ext two"]
    )
    checkpoint = verify_checkpoint(note, verifier)
    assert checkpoint.extensions == ("ext one", "ext two")
    assert checkpoint.to_text().endswith("\next one\next two\n")


def test_empty_log_checkpoint(log_key: Ed25519PrivateKey, verifier: str) -> None:
    checkpoint = verify_checkpoint(signed(log_key, 0), verifier)
    assert checkpoint.size == 0
    assert checkpoint.root == root([])


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("\n17\n", "\n18\n"),
        ("\n17\n", "\n017\n"),
        (ORIGIN + "\n", "audit.matchhub.test/other\n"),
    ],
)
def test_tampered_body_is_rejected(
    log_key: Ed25519PrivateKey, verifier: str, old: str, new: str
) -> None:
    note = signed(log_key, 17)
    assert old in note
    assert reason_of(verify_checkpoint, note.replace(old, new, 1), verifier) is (
        Reason.BAD_SIGNATURE
    )


def test_tampered_root_is_rejected(log_key: Ed25519PrivateKey, verifier: str) -> None:
    note = signed(log_key, 17)
    good = base64.b64encode(root(LEAVES[:17])).decode()
    bad = base64.b64encode(root(LEAVES[:16])).decode()
    assert reason_of(verify_checkpoint, note.replace(good, bad), verifier) is Reason.BAD_SIGNATURE


def test_tampered_signature_is_rejected(log_key: Ed25519PrivateKey, verifier: str) -> None:
    body, _, line = signed(log_key, 17).partition("\n\n")
    name, encoded = line[2:-1].split(" ")
    blob = base64.b64decode(encoded)
    for position in (4, 20, 40, 67):  # the key ID stays; the signature changes
        changed = bytearray(blob)
        changed[position] ^= 0x40
        note = f"{body}\n\n— {name} {base64.b64encode(bytes(changed)).decode()}\n"
        assert reason_of(verify_checkpoint, note, verifier) is Reason.BAD_SIGNATURE
    short = f"{body}\n\n— {name} {base64.b64encode(blob[:-1]).decode()}\n"
    assert reason_of(verify_checkpoint, short, verifier) is Reason.BAD_SIGNATURE


def test_signature_by_another_key_is_rejected(
    log_key: Ed25519PrivateKey, other_key: Ed25519PrivateKey, verifier: str
) -> None:
    # Another key under the log's name has another key ID: an unknown key, to be ignored.
    assert reason_of(verify_checkpoint, signed(other_key, 17), verifier) is Reason.UNKNOWN_KEY
    # Another key's signature passed off under the log's name and key ID does not verify.
    body = signed(log_key, 17).partition("\n\n")[0]
    forged = other_key.sign((body + "\n").encode())
    blob = key_id(ORIGIN, log_key.public_key()).to_bytes(4, "big") + forged
    note = f"{body}\n\n— {ORIGIN} {base64.b64encode(blob).decode()}\n"
    assert reason_of(verify_checkpoint, note, verifier) is Reason.BAD_SIGNATURE


def test_wrong_key_name_is_rejected(log_key: Ed25519PrivateKey, verifier: str) -> None:
    note = sign_checkpoint(ORIGIN, 17, root(LEAVES[:17]), "someone.else/log", log_key)
    with pytest.raises(CheckpointError, match=r"no signature by key audit\.matchhub\.test/log\+"):
        verify_checkpoint(note, verifier)
    assert reason_of(verify_checkpoint, note, verifier) is Reason.UNKNOWN_KEY


def test_unknown_cosignatures_are_ignored(
    log_key: Ed25519PrivateKey, other_key: Ed25519PrivateKey, verifier: str
) -> None:
    body = Checkpoint(ORIGIN, 17, root(LEAVES[:17])).to_text()
    log_line = sign_note(body, ORIGIN, log_key).split("\n\n")[1]
    witness_line = sign_note(body, "witness.example/w1", other_key).split("\n\n")[1]
    for lines in (log_line + witness_line, witness_line + log_line):
        assert verify_checkpoint(body + "\n" + lines, verifier).size == 17


def test_wrong_origin_is_rejected(log_key: Ed25519PrivateKey, verifier: str) -> None:
    note = sign_checkpoint("audit.matchhub.test/other", 5, root(LEAVES[:5]), ORIGIN, log_key)
    assert verify_checkpoint(note, verifier).origin == "audit.matchhub.test/other"
    with pytest.raises(CheckpointError, match=r"expected 'audit\.matchhub\.test/log'") as info:
        verify_checkpoint(note, verifier, origin=ORIGIN)
    assert info.value.reason is Reason.WRONG_ORIGIN


GOOD_ROOT_LINE = base64.b64encode(root(LEAVES[:5])).decode()


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n5\n",
        f"{ORIGIN}\n{GOOD_ROOT_LINE}\n",
        f"{ORIGIN}\n05\n{GOOD_ROOT_LINE}\n",
        f"{ORIGIN}\n-5\n{GOOD_ROOT_LINE}\n",
        f"{ORIGIN}\n+5\n{GOOD_ROOT_LINE}\n",
        f"{ORIGIN}\n 5\n{GOOD_ROOT_LINE}\n",
        f"{ORIGIN}\n5_0\n{GOOD_ROOT_LINE}\n",
        f"{ORIGIN}\n\uff15\n{GOOD_ROOT_LINE}\n",  # a fullwidth 5, which int() would accept
        f"{ORIGIN}\n18446744073709551616\n{GOOD_ROOT_LINE}\n",  # 2**64
        f"{ORIGIN}\nfive\n{GOOD_ROOT_LINE}\n",
        f"{ORIGIN}\n5\n{GOOD_ROOT_LINE[:-1]}\n",
        f"{ORIGIN}\n5\n{GOOD_ROOT_LINE.rstrip('=')}\n",
        f"{ORIGIN}\n5\n{base64.b64encode(bytes(31)).decode()}\n",
        f"{ORIGIN}\n5\n{base64.b64encode(bytes(33)).decode()}\n",
        f"{ORIGIN}\n5\n{root(LEAVES[:5]).hex()}\n",
        f"{ORIGIN}\n5\n{GOOD_ROOT_LINE}\n\nextension after a blank line\n",
        f"\n5\n{GOOD_ROOT_LINE}\n",
    ],
)
def test_malformed_checkpoint_body_is_rejected_after_the_signature(
    log_key: Ed25519PrivateKey, verifier: str, body: str
) -> None:
    note = sign_note(body, ORIGIN, log_key)
    assert reason_of(verify_checkpoint, note, verifier) is Reason.MALFORMED_CHECKPOINT


def test_non_canonical_base64_root_is_rejected(log_key: Ed25519PrivateKey, verifier: str) -> None:
    # The last character of a 32-byte base64 carries two unused bits; setting one changes the
    # text but not the bytes, so it must be refused to keep one text per checkpoint.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = GOOD_ROOT_LINE[-2]
    twin = GOOD_ROOT_LINE[:-2] + alphabet[alphabet.index(last) ^ 1] + "="
    assert base64.b64decode(twin) == base64.b64decode(GOOD_ROOT_LINE)
    note = sign_note(f"{ORIGIN}\n5\n{twin}\n", ORIGIN, log_key)
    assert reason_of(verify_checkpoint, note, verifier) is Reason.MALFORMED_CHECKPOINT


def test_sign_checkpoint_refuses_bad_fields(log_key: Ed25519PrivateKey) -> None:
    good = root(LEAVES[:5])
    for origin, size, tree_root, extensions in [
        ("", 5, good, ()),
        ("a\nb", 5, good, ()),
        (ORIGIN, -1, good, ()),
        (ORIGIN, 2**64, good, ()),
        (ORIGIN, 5, good[:31], ()),
        (ORIGIN, 5, good, ("",)),
        (ORIGIN, 5, good, ("a\nb",)),
    ]:
        assert (
            reason_of(
                sign_checkpoint, origin, size, tree_root, ORIGIN, log_key, extensions=extensions
            )
            is Reason.MALFORMED_CHECKPOINT
        )
    assert reason_of(sign_checkpoint, ORIGIN, 5, good, "bad name", log_key) is (
        Reason.MALFORMED_KEY
    )


def test_checkpoint_error_is_a_value_error() -> None:
    assert issubclass(CheckpointError, ValueError)
    assert reason_of(verify_checkpoint, "nonsense", GO_VERIFIER_KEY) == "malformed_note"


# --- the witness ------------------------------------------------------------------------------


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "witness.json"


def test_witness_accepts_a_growing_log(
    log_key: Ed25519PrivateKey, verifier: str, state: Path
) -> None:
    witness = Witness(state, verifier, ORIGIN)
    assert witness.checkpoint is None
    assert not state.exists()

    first = witness.update(signed(log_key, 5))  # trust on first use
    assert first == Checkpoint(ORIGIN, 5, root(LEAVES[:5]))
    for old, new in [(5, 6), (6, 13), (13, 16), (16, 40)]:
        accepted = witness.update(signed(log_key, new), consistency_proof(old, LEAVES[:new]))
        assert (accepted.size, accepted.root) == (new, root(LEAVES[:new]))
        assert witness.checkpoint == accepted
    # The same checkpoint again is no news, and needs no proof.
    assert witness.update(signed(log_key, 40)).size == 40

    saved = json.loads(state.read_text(encoding="utf-8"))
    assert saved["size"] == 40
    assert saved["origin"] == ORIGIN
    assert base64.b64decode(saved["root"]) == root(LEAVES)
    assert saved["note"] == witness.note
    assert sorted(p.name for p in state.parent.iterdir()) == ["witness.json"]


def test_witness_detects_rollback(log_key: Ed25519PrivateKey, verifier: str, state: Path) -> None:
    witness = Witness(state, verifier, ORIGIN)
    witness.update(signed(log_key, 10))
    before = state.read_bytes()
    with pytest.raises(CheckpointError, match="rollback from size 10 to 7") as info:
        witness.update(signed(log_key, 7))
    assert info.value.reason is Reason.ROLLBACK
    assert info.value.evidence == (signed(log_key, 10), signed(log_key, 7))
    assert state.read_bytes() == before
    assert witness.checkpoint is not None
    assert witness.checkpoint.size == 10


def test_witness_detects_fork_at_the_same_size(
    log_key: Ed25519PrivateKey, verifier: str, state: Path
) -> None:
    rewritten = list(LEAVES)
    rewritten[3] = leaf_hash(b"a record the operator would rather not have logged")
    witness = Witness(state, verifier, ORIGIN)
    witness.update(signed(log_key, 10))
    before = state.read_bytes()
    forked = signed(log_key, 10, rewritten)
    with pytest.raises(CheckpointError, match="fork: same size 10, different root") as info:
        witness.update(forked)
    assert info.value.reason is Reason.FORK
    # The evidence is two checkpoints signed by the log key: anyone can check the fork.
    saved_note, refused_note = info.value.evidence
    assert refused_note == forked
    first = verify_checkpoint(saved_note, verifier)
    second = verify_checkpoint(refused_note, verifier)
    assert first.size == second.size
    assert first.root != second.root
    assert state.read_bytes() == before


def test_witness_detects_an_inconsistent_larger_tree(
    log_key: Ed25519PrivateKey, verifier: str, state: Path
) -> None:
    rewritten = list(LEAVES)
    rewritten[3] = leaf_hash(b"a record the operator would rather not have logged")
    witness = Witness(state, verifier, ORIGIN)
    witness.update(signed(log_key, 10))
    before = state.read_bytes()
    new = signed(log_key, 12, rewritten)
    for proof in (
        consistency_proof(10, rewritten[:12]),  # the rewritten log's own proof
        consistency_proof(10, LEAVES[:12]),  # the honest log's proof, for another root
        consistency_proof(9, rewritten[:12]),  # a proof for other sizes
        [],
    ):
        with pytest.raises(CheckpointError, match="not consistent") as info:
            witness.update(new, proof)
        assert info.value.reason is Reason.INCONSISTENT
        assert info.value.evidence[1] == new
    assert state.read_bytes() == before
    # The honest log still gets through afterwards.
    assert witness.update(signed(log_key, 12), consistency_proof(10, LEAVES[:12])).size == 12


def test_witness_refuses_bad_signatures_and_origins(
    log_key: Ed25519PrivateKey, other_key: Ed25519PrivateKey, verifier: str, state: Path
) -> None:
    witness = Witness(state, verifier, ORIGIN)
    assert reason_of(witness.update, signed(other_key, 5)) is Reason.UNKNOWN_KEY
    assert witness.checkpoint is None
    assert not state.exists()
    witness.update(signed(log_key, 5))
    tampered = signed(log_key, 6).replace("\n6\n", "\n60\n")
    assert reason_of(witness.update, tampered, consistency_proof(5, LEAVES[:6])) is (
        Reason.BAD_SIGNATURE
    )
    elsewhere = sign_checkpoint("audit.matchhub.test/other", 6, root(LEAVES[:6]), ORIGIN, log_key)
    assert reason_of(witness.update, elsewhere, consistency_proof(5, LEAVES[:6])) is (
        Reason.WRONG_ORIGIN
    )
    assert witness.checkpoint is not None
    assert witness.checkpoint.size == 5


def test_witness_state_persists_across_instances(
    log_key: Ed25519PrivateKey, verifier: str, state: Path
) -> None:
    Witness(state, verifier, ORIGIN).update(signed(log_key, 20))
    reopened = Witness(state, parse_verifier_key(verifier), ORIGIN)
    assert reopened.checkpoint == Checkpoint(ORIGIN, 20, root(LEAVES[:20]))
    assert reopened.note == signed(log_key, 20)
    # The reopened witness still remembers enough to catch a rollback and a fork...
    assert reason_of(reopened.update, signed(log_key, 19)) is Reason.ROLLBACK
    rewritten = [*LEAVES[:19], leaf_hash(b"other")]
    assert reason_of(reopened.update, signed(log_key, 20, rewritten)) is Reason.FORK
    # ...and to check a consistency proof from where the last one stopped.
    reopened.update(signed(log_key, 33), consistency_proof(20, LEAVES[:33]))
    assert Witness(state, verifier, ORIGIN).checkpoint == Checkpoint(ORIGIN, 33, root(LEAVES[:33]))


def test_witness_refuses_a_damaged_state(
    log_key: Ed25519PrivateKey, other_key: Ed25519PrivateKey, verifier: str, state: Path
) -> None:
    Witness(state, verifier, ORIGIN).update(signed(log_key, 20))
    good = json.loads(state.read_text(encoding="utf-8"))

    def damaged(**changes: object) -> Reason:
        state.write_text(json.dumps({**good, **changes}), encoding="utf-8")
        return reason_of(Witness, state, verifier, ORIGIN)

    assert damaged(size=21) is Reason.BAD_STATE
    assert damaged(root=base64.b64encode(root(LEAVES[:21])).decode()) is Reason.BAD_STATE
    assert damaged(note=good["note"].replace("\n20\n", "\n21\n")) is Reason.BAD_STATE
    assert damaged(note=signed(other_key, 20)) is Reason.BAD_STATE
    assert damaged(note=None) is Reason.BAD_STATE
    assert damaged(format="something else") is Reason.BAD_STATE
    state.write_text("{not json", encoding="utf-8")
    assert reason_of(Witness, state, verifier, ORIGIN) is Reason.BAD_STATE
    state.write_bytes(b"\xff\xfe")
    assert reason_of(Witness, state, verifier, ORIGIN) is Reason.BAD_STATE
    # A state saved for one log is not taken for another's.
    state.write_text(json.dumps(good), encoding="utf-8")
    assert reason_of(Witness, state, verifier, "audit.matchhub.test/other") is Reason.BAD_STATE
    assert Witness(state, verifier, ORIGIN).checkpoint is not None


def test_witness_takes_a_verifier_key_object(log_key: Ed25519PrivateKey, state: Path) -> None:
    key = VerifierKey(
        ORIGIN,
        key_id(ORIGIN, log_key.public_key()),
        parse_verifier_key(format_verifier_key(ORIGIN, log_key.public_key())).public_key_bytes,
    )
    assert Witness(state, key, ORIGIN).update(signed(log_key, 3)).size == 3
