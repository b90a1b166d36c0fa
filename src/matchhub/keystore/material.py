"""The broker's own secrets, loaded once at start-up (never at import).

``broker.key``
    re-keys every wire token on arrival (AES-CMAC, keystore/rekey.py) and seals roster
    tokens (AES-SIV), under keys derived from it. Held only by the broker: a leaked
    matching key without it, or a leaked database without it, reveals nothing.
``audit-signing-key.pem``
    Ed25519; signs audit checkpoints. Its public half is what auditors verify against.
``audit-subject.key``
    keys the digests of tokens written to the audit log, so an auditor holding a person's
    token can find every access to that person while a copy of the log reveals no one.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from matchhub.kit.errors import OperatorError
from matchhub.kit.settings import StatePaths

SECRET_FORMAT = "matchhub-secret/1"  # noqa: S105 (a format name, not a secret)


@dataclass(frozen=True)
class Secret:
    """32 random bytes with a name and version; ``repr`` never shows the bytes."""

    name: str
    version: str
    value: bytes = field(repr=False)

    @classmethod
    def generate(cls, name: str, version: str = "1") -> Secret:
        return cls(name, version, secrets.token_bytes(32))

    def dumps(self) -> bytes:
        body = {
            "format": SECRET_FORMAT,
            "name": self.name,
            "version": self.version,
            "key": base64.b64encode(self.value).decode("ascii"),
        }
        return (json.dumps(body, indent=2) + "\n").encode("ascii")

    @classmethod
    def load(cls, path: Path, name: str) -> Secret:
        try:
            body = json.loads(_read(path))
            if body.get("format") != SECRET_FORMAT or body.get("name") != name:
                raise ValueError(body.get("format"))
            value = base64.b64decode(body["key"], validate=True)
        except (ValueError, KeyError, AttributeError, TypeError):
            raise OperatorError(f"{path} is not a matchhub {name} file") from None
        if len(value) < 32:
            raise OperatorError(f"{path} holds a key shorter than 32 bytes")
        return cls(name, str(body["version"]), value)


@dataclass(frozen=True)
class KeyMaterial:
    broker_key: Secret
    audit_subject_key: Secret
    audit_signing_key: Ed25519PrivateKey = field(repr=False)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise OperatorError(f"{path} is missing: run `matchhub init` first") from None
    except OSError as exc:
        raise OperatorError(f"{path} cannot be read: {exc.strerror}") from None


def load_key_material(paths: StatePaths) -> KeyMaterial:
    try:
        signing = serialization.load_pem_private_key(_read(paths.audit_signing_key), None)
    except ValueError:
        raise OperatorError(f"{paths.audit_signing_key} is not a PEM private key") from None
    if not isinstance(signing, Ed25519PrivateKey):
        raise OperatorError(f"{paths.audit_signing_key} is not an Ed25519 key")
    return KeyMaterial(
        broker_key=Secret.load(paths.broker_key, "broker-key"),
        audit_subject_key=Secret.load(paths.audit_subject_key, "audit-subject-key"),
        audit_signing_key=signing,
    )


def audit_key_pem(key: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public
