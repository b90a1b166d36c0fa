"""Rules about agencies and their certificates. No HTTP here, and no commit: the caller owns
the transaction."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from cryptography import x509
from sqlalchemy.orm import Session

from matchhub.identity.models import Agency, Certificate
from matchhub.identity.repository import Credential, IdentityRepository
from matchhub.identity.schemas import Principal
from matchhub.identity.scopes import KIND_SCOPES
from matchhub.keystore import pki
from matchhub.keystore.service import load_ca
from matchhub.kit.errors import Conflict, NotFound, Unauthenticated, UnprocessableEntity
from matchhub.kit.models import utcnow
from matchhub.kit.settings import StatePaths
from matchhub.protocol.kinds import AgencyKind

AGENCY_CODE = re.compile(r"^[a-z][a-z0-9_-]{1,63}$")


@dataclass(frozen=True)
class _CertificateFacts:
    fingerprint: str
    client_auth: bool
    agency_uri: str | None


@lru_cache(maxsize=4096)
def _facts(certificate: x509.Certificate) -> _CertificateFacts:
    """What a certificate says of itself; it never changes, so it is worked out once."""
    return _CertificateFacts(
        pki.fingerprint(certificate),
        pki.has_client_auth(certificate),
        pki.agency_uri_of(certificate),
    )


def authenticate(session: Session, certificate: x509.Certificate | None, hub: str) -> Principal:
    """Certificate → registered agency. The TLS layer has already verified the chain and the
    CRL; this adds the registry, which a revocation reaches on the very next request."""
    return authenticate_with(IdentityRepository(session).credential, certificate, hub)


def authenticate_with(
    credential_of: Callable[[str], Credential | None],
    certificate: x509.Certificate | None,
    hub: str,
) -> Principal:
    """The rules of :func:`authenticate`, over any registry: the database, or the lookups'
    in-memory view of it (lookups/inmemory.py)."""
    if certificate is None:
        raise Unauthenticated("a client certificate is required", code="certificate_required")
    facts = _facts(certificate)
    row = credential_of(facts.fingerprint)
    if row is None:
        raise Unauthenticated(
            "this certificate is not registered with the hub", code="certificate_unknown"
        )
    if row.revoked_at is not None or row.agency_revoked_at is not None:
        raise Unauthenticated("this certificate has been revoked", code="certificate_revoked")
    now = datetime.now(UTC)
    if not (row.not_before <= now <= row.not_after):
        raise Unauthenticated("this certificate is not valid now", code="certificate_expired")
    if not facts.client_auth:
        raise Unauthenticated(
            "the certificate is not for client authentication", code="certificate_wrong_usage"
        )
    if facts.agency_uri != pki.agency_uri(hub, row.code):
        raise Unauthenticated(
            "the certificate's agency name does not match the registry", code="certificate_unknown"
        )
    kind = AgencyKind(row.kind)
    return Principal(
        agency_id=row.agency_id,
        code=row.code,
        kind=kind,
        name=row.name,
        scopes=KIND_SCOPES[kind],
        certificate_fingerprint=row.fingerprint,
        certificate_serial=row.serial,
    )


def parse_kind(value: str) -> AgencyKind:
    try:
        return AgencyKind(value)
    except ValueError:
        kinds = ", ".join(k.value for k in AgencyKind)
        raise UnprocessableEntity(
            f"unknown agency kind {value!r}; one of: {kinds}", code="unknown_agency_kind"
        ) from None


def register_agency(
    session: Session, ca: pki.Issued, hub: str, *, code: str, kind: AgencyKind, name: str
) -> pki.Issued:
    if not AGENCY_CODE.match(code):
        raise UnprocessableEntity(
            "an agency code is 2-64 characters: lowercase letters, digits, '-' and '_', "
            "starting with a letter",
            code="invalid_agency_code",
        )
    repo = IdentityRepository(session)
    if repo.agency_by_code(code) is not None:
        raise Conflict(f"agency {code!r} is already registered", code="agency_exists")
    agency = Agency(code=code, kind=kind.value, name=name)
    repo.add(agency)
    issued = pki.issue_client(ca, hub, code, name)
    record_certificate(session, agency, issued.certificate)
    return issued


def record_certificate(session: Session, agency: Agency, certificate: x509.Certificate) -> None:
    IdentityRepository(session).add(
        Certificate(
            agency_id=agency.id,
            serial=pki.serial_hex(certificate),
            fingerprint=pki.fingerprint(certificate),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )
    )


def revoke_agency(session: Session, code: str) -> Agency:
    repo = IdentityRepository(session)
    agency = repo.agency_by_code(code)
    if agency is None:
        raise NotFound(f"no agency {code!r} is registered", code="agency_not_found")
    if agency.revoked_at is not None:
        raise Conflict(f"agency {code!r} is already revoked", code="agency_revoked")
    now = utcnow()
    agency.revoked_at = now
    for certificate in agency.certificates:
        if certificate.revoked_at is None:
            certificate.revoked_at = now
    session.flush()
    return agency


def current_crl(session: Session, ca: pki.Issued) -> x509.CertificateRevocationList:
    revoked = IdentityRepository(session).revoked_certificates()
    return pki.build_crl(
        ca, [(int(c.serial, 16), c.revoked_at) for c in revoked if c.revoked_at is not None]
    )


def publish_crl(session: Session, paths: StatePaths) -> None:
    """Write the CRL from the registry; the running server picks it up at the next handshake."""
    crl = current_crl(session, load_ca(paths))
    pki.write_public(paths.crl, pki.crl_pem(crl), replace=True)


def agencies(session: Session) -> Sequence[Agency]:
    return IdentityRepository(session).agencies()
