"""Matching-key versions and the hub CA, as the rest of the broker uses them. No commit here:
callers own the transaction."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matchhub.keystore import pki
from matchhub.keystore.models import MatchingKeyVersion
from matchhub.kit.errors import Conflict, NotFound, OperatorError
from matchhub.kit.models import utcnow
from matchhub.kit.settings import StatePaths


def load_ca(paths: StatePaths) -> pki.Issued:
    try:
        return pki.load_ca(paths.ca_cert, paths.ca_key)
    except FileNotFoundError as exc:
        raise OperatorError(f"{exc.filename} is missing: run `matchhub init` first") from None


def register_matching_key_version(session: Session, version: str | None = None) -> str:
    if version is None:
        count = session.scalar(select(func.count()).select_from(MatchingKeyVersion)) or 0
        version = f"v{count + 1}"
    if session.get(MatchingKeyVersion, version) is not None:
        raise Conflict(f"matching-key version {version!r} exists", code="key_version_exists")
    session.add(MatchingKeyVersion(version=version))
    session.flush()
    return version


def retire_matching_key_version(session: Session, version: str) -> MatchingKeyVersion:
    """Mark ``version`` retired: uploads under it are refused from now on. What is stored under
    it is discarded by its own domains (``matchhub keys retire`` composes them). The last
    active version cannot be retired."""
    row = session.get(MatchingKeyVersion, version)
    if row is None:
        raise NotFound(f"no matching-key version {version!r}", code="unknown_key_version")
    if row.state != "active":
        raise Conflict(
            f"matching-key version {version!r} is already retired", code="key_version_retired"
        )
    active = session.scalar(
        select(func.count())
        .select_from(MatchingKeyVersion)
        .where(MatchingKeyVersion.state == "active")
    )
    if (active or 0) <= 1:
        raise Conflict(
            "this is the only active matching-key version; make its successor first "
            "(matchhub keys matching-key)",
            code="last_key_version",
        )
    row.state, row.retired_at = "retired", utcnow()
    session.flush()
    return row
