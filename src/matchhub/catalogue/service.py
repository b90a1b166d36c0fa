"""Who may assert and who may see which flag, for which purpose. No HTTP, no commit."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from matchhub.catalogue import schemas
from matchhub.catalogue.models import Flag, Grant, Purpose
from matchhub.catalogue.repository import CatalogueRepository
from matchhub.catalogue.schemas import Catalogue, FlagOut, Labels, PurposeOut, Rule
from matchhub.identity.schemas import Principal
from matchhub.kit.errors import Conflict, Forbidden, NotFound, UnprocessableEntity
from matchhub.kit.models import utcnow
from matchhub.protocol import catalogue as defaults
from matchhub.protocol.kinds import PROVIDER_KINDS, AgencyKind

FLAG_CODE = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z0-9_]{1,60}$")
PURPOSE_CODE = re.compile(schemas.PURPOSE_CODE)


def seed_defaults(session: Session) -> None:
    repo = CatalogueRepository(session)
    for spec in defaults.FLAGS:
        repo.add(Flag(**spec._asdict(), version=1))
    for purpose in defaults.PURPOSES:
        repo.add(Purpose(**purpose._asdict()))
    for spec in defaults.FLAGS:
        for purpose in defaults.PURPOSES:
            repo.add(
                Grant(
                    grantee=defaults.WELFARE_GRANTEE, flag_code=spec.code, purpose_code=purpose.code
                )
            )


def grantees_of(principal: Principal) -> list[str]:
    return [f"kind:{principal.kind.value}", f"agency:{principal.code}"]


def _flag_out(flag: Flag, access: str, purposes: Iterable[str]) -> FlagOut:
    return FlagOut(
        code=flag.code,
        asserted_by=flag.asserted_by,
        labels=Labels(en=flag.label_en, ar=flag.label_ar),
        rule=Rule(text=flag.rule_text, params=flag.rule_params),
        version=flag.version,
        access=access,
        purposes=sorted(purposes),
    )


def _purpose_out(purpose: Purpose) -> PurposeOut:
    return PurposeOut(
        code=purpose.code,
        labels=Labels(en=purpose.label_en, ar=purpose.label_ar),
        legal_basis=purpose.legal_basis,
    )


def visible_catalogue(session: Session, principal: Principal) -> Catalogue:
    """Providers see the flags they may assert; consumers the flags granted to them, with the
    purposes; auditors everything (they read the configuration, they do not change it)."""
    repo = CatalogueRepository(session)
    flags = repo.flags()
    if principal.kind in PROVIDER_KINDS:
        return Catalogue(
            flags=[_flag_out(f, "assert", []) for f in flags if f.asserted_by == principal.kind],
            purposes=[],
        )
    grants = repo.grants(None if principal.kind is AgencyKind.auditor else grantees_of(principal))
    purposes_by_flag: dict[str, set[str]] = defaultdict(set)
    for grant in grants:
        purposes_by_flag[grant.flag_code].add(grant.purpose_code)
    shown = [
        _flag_out(f, "read", purposes_by_flag[f.code])
        for f in flags
        if principal.kind is AgencyKind.auditor or f.code in purposes_by_flag
    ]
    used = set().union(*purposes_by_flag.values()) if purposes_by_flag else set()
    return Catalogue(
        flags=shown,
        purposes=[_purpose_out(p) for p in repo.purposes() if p.code in used],
    )


def assertable_flags(session: Session, kind: AgencyKind, codes: Sequence[str]) -> list[Flag]:
    """The flags a provider of ``kind`` declares for an upload, each checked."""
    known = CatalogueRepository(session).flags_by_code(codes)
    result = []
    for code in codes:
        flag = known.get(code)
        if flag is None or flag.retired_at is not None:
            raise UnprocessableEntity(f"unknown flag {code!r}", code="unknown_flag")
        if flag.asserted_by != kind.value:
            raise Forbidden(
                f"flag {code!r} is asserted by {flag.asserted_by} agencies, not {kind.value}",
                code="flag_not_assertable",
            )
        result.append(flag)
    return result


def granted_codes(session: Session, grantees: Sequence[str], purpose: str) -> set[str]:
    """Live flags granted to any of ``grantees`` for ``purpose``."""
    return set(CatalogueRepository(session).granted_codes(grantees, purpose))


def granted_flags(
    session: Session, principal: Principal, purpose: str | None, subset: Sequence[str] | None
) -> list[str]:
    """The codes of the flags ``principal`` may see for ``purpose``, sorted; a requested subset
    must lie inside. One query when all is well; the refusals look further to say why."""
    repo = CatalogueRepository(session)
    return granted_flags_with(
        repo.granted_codes, lambda code: repo.purpose(code) is not None, principal, purpose, subset
    )


def granted_flags_with(
    granted_codes: Callable[[list[str], str], list[str]],
    purpose_known: Callable[[str], bool],
    principal: Principal,
    purpose: str | None,
    subset: Sequence[str] | None,
) -> list[str]:
    """The rules of :func:`granted_flags`, over any catalogue: the database, or the lookups'
    in-memory view of it (lookups/inmemory.py)."""
    if not purpose:
        raise UnprocessableEntity("every request names its purpose", code="purpose_required")
    granted = granted_codes(grantees_of(principal), purpose)
    if not granted:
        if not purpose_known(purpose):
            raise UnprocessableEntity(f"unknown purpose {purpose!r}", code="unknown_purpose")
        raise Forbidden(
            f"purpose {purpose!r} is not granted to {principal.code}", code="purpose_not_granted"
        )
    if subset is None:
        return granted
    outside = sorted(set(subset) - set(granted))
    if outside:
        raise Forbidden(
            f"flags not granted for {purpose!r}: {', '.join(outside)}", code="flag_not_granted"
        )
    return sorted(set(subset))


# --- operator changes -----------------------------------------------------------------------


def add_flag(
    session: Session,
    *,
    code: str,
    asserted_by: AgencyKind,
    label_en: str,
    label_ar: str,
    rule_text: str,
    rule_params: dict[str, Any],
) -> Flag:
    if not FLAG_CODE.match(code):
        raise UnprocessableEntity("a flag code looks like 'bank.large_loan'", code="invalid_flag")
    if asserted_by not in PROVIDER_KINDS:
        raise UnprocessableEntity(
            f"{asserted_by.value} agencies do not assert flags", code="invalid_flag"
        )
    repo = CatalogueRepository(session)
    if repo.flag(code) is not None:
        raise Conflict(f"flag {code!r} exists", code="flag_exists")
    flag = Flag(
        code=code,
        asserted_by=asserted_by.value,
        label_en=label_en,
        label_ar=label_ar,
        rule_text=rule_text,
        rule_params=rule_params,
        version=1,
    )
    repo.add(flag)
    return flag


def update_rule(session: Session, code: str, rule_text: str, rule_params: dict[str, Any]) -> Flag:
    flag = _flag(session, code)
    flag.rule_text, flag.rule_params, flag.version = rule_text, rule_params, flag.version + 1
    session.flush()
    return flag


def retire_flag(session: Session, code: str) -> Flag:
    flag = _flag(session, code)
    if flag.retired_at is not None:
        raise Conflict(f"flag {code!r} is already retired", code="flag_retired")
    flag.retired_at = utcnow()
    session.flush()
    return flag


def _flag(session: Session, code: str) -> Flag:
    flag = CatalogueRepository(session).flag(code)
    if flag is None:
        raise NotFound(f"no flag {code!r}", code="unknown_flag")
    return flag


def add_purpose(
    session: Session, code: str, label_en: str, label_ar: str, legal_basis: str
) -> Purpose:
    if not PURPOSE_CODE.match(code):
        raise UnprocessableEntity(
            "a purpose code is lowercase letters, digits and '_'", code="invalid_purpose"
        )
    repo = CatalogueRepository(session)
    if repo.purpose(code) is not None:
        raise Conflict(f"purpose {code!r} exists", code="purpose_exists")
    purpose = Purpose(code=code, label_en=label_en, label_ar=label_ar, legal_basis=legal_basis)
    repo.add(purpose)
    return purpose


def parse_grantee(value: str) -> str:
    kind, _, name = value.partition(":")
    if kind == "kind" and name in {AgencyKind.welfare.value}:
        return value
    if kind == "agency" and name:
        return value
    raise UnprocessableEntity(
        "a grantee is 'kind:welfare' or 'agency:<code>'", code="invalid_grantee"
    )


def add_grant(session: Session, grantee: str, flag_code: str, purpose_code: str) -> Grant:
    repo = CatalogueRepository(session)
    _flag(session, flag_code)
    if repo.purpose(purpose_code) is None:
        raise NotFound(f"no purpose {purpose_code!r}", code="unknown_purpose")
    grantee = parse_grantee(grantee)
    if repo.grant(grantee, flag_code, purpose_code) is not None:
        raise Conflict("that grant exists", code="grant_exists")
    grant = Grant(grantee=grantee, flag_code=flag_code, purpose_code=purpose_code)
    repo.add(grant)
    return grant


def revoke_grant(session: Session, grantee: str, flag_code: str, purpose_code: str) -> None:
    repo = CatalogueRepository(session)
    grant = repo.grant(grantee, flag_code, purpose_code)
    if grant is None:
        raise NotFound("no such grant", code="grant_not_found")
    repo.delete(grant)
