"""Staff accounts: roles and what each may do, passwords (argon2id), lockout, pseudonyms.

Roles (DESIGN.md, "Parties"): a **caseworker** looks up individuals; an **analyst** registers
the roster, runs collective matches and downloads lists; a **supervisor** manages staff and may
do everything a caseworker or an analyst may; an **auditor** is reserved for the audit office's
console (a desk set up with the auditor's certificate) and sees only that.

Passwords are hashed with argon2id (argon2-cffi's `PasswordHasher`, RFC 9106 low-memory
parameters) and rehashed on sign-in when the parameters change.
``MATCHHUB_DESK_PASSWORD_HASHING`` names the parameters: ``rfc9106-low-memory`` (the default,
and the only value a desk serves with) or ``test-only-cheapest``, argon2-cffi's cheapest
parameters, which the test suite sets so that its hundreds of sign-ins do not spend minutes of
CPU (docs/testing.md). A hash made with the cheap parameters is rehashed at the next sign-in on
a desk with the default ones; a sign-in never rehashes downwards. A run of
``Settings.lockout_failures`` failed sign-ins locks the account for ``lockout_minutes``; the
answer to a failed sign-in never says whether the name exists, the password was wrong or the
account is locked, so the sign-in page cannot be used to find staff names.
"""

from __future__ import annotations

import base64
import functools
import os
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import Parameters, PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from matchhub.agency.desk.models import User, utcnow


class Role(StrEnum):
    caseworker = "caseworker"
    analyst = "analyst"
    supervisor = "supervisor"
    auditor = "auditor"


class Permission(StrEnum):
    lookup = "lookup"  # look up individuals
    match = "match"  # run collective matches and see their summaries
    download = "download"  # download beneficiary and household lists
    roster = "roster"  # register or refresh the roster
    staff = "staff"  # add, disable and enable staff
    log = "log"  # read the desk's own log
    cases = "cases"  # the case queue: see cases, open them, write notes
    casework = "casework"  # move a case (a caseworker: only the cases assigned to them)
    assign = "assign"  # assign cases to caseworkers
    audit = "audit"  # the auditor's console (reserved)


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.caseworker: frozenset({Permission.lookup, Permission.cases, Permission.casework}),
    Role.analyst: frozenset(
        {Permission.match, Permission.download, Permission.roster, Permission.cases}
    ),
    Role.supervisor: frozenset(
        {
            Permission.lookup,
            Permission.match,
            Permission.download,
            Permission.roster,
            Permission.staff,
            Permission.log,
            Permission.cases,
            Permission.casework,
            Permission.assign,
        }
    ),
    Role.auditor: frozenset({Permission.audit}),
}

MIN_PASSWORD = 10
MAX_PASSWORD = 1024
LANGUAGES = ("ar", "en")

PASSWORD_HASHING_ENV = "MATCHHUB_DESK_PASSWORD_HASHING"  # noqa: S105 (a variable name)
DEFAULT_PASSWORD_HASHING = "rfc9106-low-memory"  # noqa: S105 (parameters, not a password)
PASSWORD_HASHING: dict[str, Parameters] = {
    # argon2id with RFC 9106's second recommended parameter set: the default.
    "rfc9106-low-memory": profiles.RFC_9106_LOW_MEMORY,
    # For the test suite only: no protection worth the name against a stolen database.
    "test-only-cheapest": profiles.CHEAPEST,
}


def password_hashing() -> str:
    """The name of the argon2id parameters new hashes use (``MATCHHUB_DESK_PASSWORD_HASHING``)."""
    name = os.environ.get(PASSWORD_HASHING_ENV, DEFAULT_PASSWORD_HASHING)
    if name not in PASSWORD_HASHING:
        raise AccountError(
            f"{PASSWORD_HASHING_ENV} is one of {', '.join(PASSWORD_HASHING)}", "bad_hashing"
        )
    return name


@functools.cache
def _hashing(name: str) -> tuple[PasswordHasher, str]:
    """The hasher of the parameters called ``name``, and a hash verified against when the name
    is unknown, so a refusal takes as long either way."""
    hasher = PasswordHasher.from_parameters(PASSWORD_HASHING[name])
    return hasher, hasher.hash(secrets.token_urlsafe(16))


def _hasher() -> PasswordHasher:
    return _hashing(password_hashing())[0]


def _dummy() -> str:
    return _hashing(password_hashing())[1]


class AccountError(Exception):
    """A staff-account operation refused: the message is for the person who asked."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Staff:
    """The signed-in member of staff a request or command acts for."""

    id: int
    name: str
    role: Role
    pseudonym: str
    language: str

    @property
    def permissions(self) -> frozenset[Permission]:
        return ROLE_PERMISSIONS[self.role]

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions

    @classmethod
    def of(cls, user: User) -> Staff:
        return cls(user.id, user.name, Role(user.role), user.pseudonym, user.language)


def new_pseudonym() -> str:
    """``du-`` and 26 base32 letters of randomness: what the broker's log names instead of the
    person (Matchhub-End-User). 128 random bits: never derived from the name, never reused."""
    return "du-" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


def clean_name(name: str) -> str:
    """A staff name as stored: NFKC, trimmed; 2-64 characters without control characters."""
    cleaned = unicodedata.normalize("NFKC", name).strip()
    if not 2 <= len(cleaned) <= 64 or any(unicodedata.category(c)[0] == "C" for c in cleaned):
        raise AccountError(
            "a staff name is 2 to 64 characters, without control characters", "invalid_name"
        )
    return cleaned


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(
            f"a password is at least {MIN_PASSWORD} characters long", "weak_password"
        )


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise AccountError(
            f"the role is one of {', '.join(r.value for r in Role)}", "invalid_role"
        ) from None


def by_name(session: Session, name: str) -> User | None:
    cleaned = unicodedata.normalize("NFKC", name).strip()
    return session.scalars(select(User).where(User.name == cleaned)).one_or_none()


def add_user(session: Session, name: str, role: Role, password: str, language: str = "ar") -> User:
    cleaned = clean_name(name)
    check_password(password)
    if by_name(session, cleaned) is not None:
        raise AccountError(f"there is already a member of staff called {cleaned!r}", "user_exists")
    user = User(
        name=cleaned,
        role=role.value,
        pseudonym=new_pseudonym(),
        password_hash=_hasher().hash(password),
        language=language if language in LANGUAGES else "ar",
        disabled=False,
        failures=0,
    )
    session.add(user)
    session.flush()
    return user


def users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def set_disabled(session: Session, name: str, disabled: bool) -> User:
    user = by_name(session, name)
    if user is None:
        raise AccountError(f"no member of staff is called {name!r}", "user_not_found")
    user.disabled = disabled
    if not disabled:
        user.failures, user.locked_until = 0, None
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    check_password(password)
    user.password_hash = _hasher().hash(password)
    user.failures, user.locked_until = 0, None
    session.flush()


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt. ``reason`` is for the desk's log only, never shown:
    ``unknown``, ``disabled``, ``locked``, ``wrong_password`` (and ``locked_now`` when this
    failure locked the account)."""

    user: User | None
    reason: str | None


def authenticate(
    session: Session,
    name: str,
    password: str,
    *,
    failures: int,
    lockout: timedelta,
    now: datetime | None = None,
) -> SignIn:
    """Check a name and password; count failures and lock after ``failures`` in a row."""
    now = now or utcnow()
    user = by_name(session, name) if len(name) <= 256 else None
    password = password[:MAX_PASSWORD]
    if user is None:
        _verify(_dummy(), password)
        return SignIn(None, "unknown")
    if user.locked_until is not None and user.locked_until > now:
        _verify(_dummy(), password)
        return SignIn(user, "locked")
    if not _verify(user.password_hash, password):
        user.failures += 1
        reason = "wrong_password"
        if user.failures >= failures:
            user.locked_until, user.failures, reason = now + lockout, 0, "locked_now"
        session.flush()
        return SignIn(user, reason)
    if user.disabled:
        return SignIn(user, "disabled")
    user.failures, user.locked_until, user.last_sign_in = 0, None, now
    # Upgraded to the desk's parameters at sign-in, never downgraded: a hash made with RFC
    # 9106's parameters stays one whatever this process was told.
    if password_hashing() == DEFAULT_PASSWORD_HASHING and _hasher().check_needs_rehash(
        user.password_hash
    ):
        user.password_hash = _hasher().hash(password)
    session.flush()
    return SignIn(user, None)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
