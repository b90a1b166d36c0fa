"""The hub's own certificate authority, built with ``cryptography``'s X.509 builders.

Agencies are identified by a SAN URI the hub controls (``urn:matchhub:<hub>:agency:<CODE>``)
on a certificate with the clientAuth extended key usage; the broker additionally requires the
certificate's SHA-256 fingerprint to be registered, so a certificate the hub did not record is
refused even if it chains to the CA. Keys are ECDSA P-256: small, fast handshakes, and supported
by every TLS stack an agency will run.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = timedelta(days=3650)
SERVER_VALIDITY = timedelta(days=825)
CLIENT_VALIDITY = timedelta(days=397)
CRL_VALIDITY = timedelta(days=7)
# Clocks at agencies drift; a certificate is valid from a little before it was made.
BACKDATE = timedelta(minutes=5)

URI_PREFIX = "urn:matchhub:"


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def agency_uri(hub: str, code: str) -> str:
    return f"{URI_PREFIX}{hub}:agency:{code}"


def proxy_uri(hub: str, name: str) -> str:
    return f"{URI_PREFIX}{hub}:proxy:{name}"


def agency_code_from_uri(hub: str, uri: str) -> str | None:
    prefix = f"{URI_PREFIX}{hub}:agency:"
    return uri[len(prefix) :] if uri.startswith(prefix) else None


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def serial_hex(certificate: x509.Certificate) -> str:
    return format(certificate.serial_number, "x")


def create_ca(hub: str, *, now: datetime | None = None) -> Issued:
    now = now or datetime.now(UTC)
    key = new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, hub),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{hub} hub CA"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def _leaf_builder(
    ca: Issued, subject: x509.Name, key: ec.EllipticCurvePrivateKey, start: datetime, end: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )


def issue_server(
    ca: Issued, hub: str, names: Sequence[str], *, now: datetime | None = None
) -> Issued:
    now = now or datetime.now(UTC)
    if not names:
        raise ValueError("a server certificate needs at least one name")
    key = new_key()
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, hub),
            x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
        ]
    )
    cert = (
        _leaf_builder(ca, subject, key, now - BACKDATE, now + SERVER_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue_client(
    ca: Issued,
    hub: str,
    code: str,
    name: str,
    *,
    now: datetime | None = None,
    validity: timedelta = CLIENT_VALIDITY,
    usage: Iterable[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.CLIENT_AUTH,),
    uri: str | None = None,
) -> Issued:
    """An agency's client certificate. ``usage`` exists so the test PKI can make wrong ones;
    ``uri`` names something other than an agency (the mTLS proxy, :func:`proxy_uri`)."""
    now = now or datetime.now(UTC)
    key = new_key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.COMMON_NAME, code),
        ]
    )
    cert = (
        _leaf_builder(ca, subject, key, now - BACKDATE, now + validity)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(uri or agency_uri(hub, code))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


def build_crl(
    ca: Issued, revoked: Iterable[tuple[int, datetime]], *, now: datetime | None = None
) -> x509.CertificateRevocationList:
    now = now or datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now)
        .next_update(now + CRL_VALIDITY)
    )
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    return builder.sign(ca.key, hashes.SHA256())


def agency_uri_of(certificate: x509.Certificate) -> str | None:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if len(uris) == 1 else None


def has_client_auth(certificate: x509.Certificate) -> bool:
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CLIENT_AUTH in eku.value


# --- files ---------------------------------------------------------------------------------


def write_secret(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600, refusing to overwrite anything."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_public(path: Path, data: bytes, *, replace: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if replace:
        # Write-then-rename, so a reader (the TLS server reloading its CRL) never sees half.
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)


def load_ca(cert_path: Path, key_path: Path) -> Issued:
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} is not an EC private key")
    return Issued(certificate, key)
