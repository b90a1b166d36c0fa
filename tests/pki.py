"""The test PKI: certificates for every way a client can be wrong.

Made fresh for each test hub from the project's own :mod:`matchhub.keystore.pki`, and named
``TEST-ONLY`` so nobody mistakes them for real keys. Nothing here is committed as a file.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.x509.oid import ExtendedKeyUsageOID

from matchhub.agency.connector.client import AgencyCredentials
from matchhub.keystore import pki


def write_credentials(
    folder: Path, code: str, issued: pki.Issued, ca_pem: bytes
) -> AgencyCredentials:
    folder.mkdir(parents=True, exist_ok=True)
    creds = AgencyCredentials.in_folder(folder, code)
    creds.certificate.write_bytes(pki.cert_pem(issued.certificate))
    creds.key.write_bytes(pki.key_pem(issued.key))
    creds.ca.write_bytes(ca_pem)
    return creds


def other_ca(hub: str) -> pki.Issued:
    """A CA that is not the hub's, issuing certificates that name real agencies."""
    return pki.create_ca(f"TEST-ONLY rogue {hub}")


def expired_client(ca: pki.Issued, hub: str, code: str) -> pki.Issued:
    long_ago = datetime.now(UTC) - timedelta(days=30)
    return pki.issue_client(
        ca, hub, code, "TEST-ONLY expired", now=long_ago, validity=timedelta(days=1)
    )


def wrong_usage_client(ca: pki.Issued, hub: str, code: str) -> pki.Issued:
    return pki.issue_client(
        ca, hub, code, "TEST-ONLY server-usage", usage=(ExtendedKeyUsageOID.SERVER_AUTH,)
    )
