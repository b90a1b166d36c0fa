"""Signed-in browsers: server-side sessions with a synchroniser CSRF token.

The session cookie holds 32 random bytes; the database keeps only their SHA-256, with the
member of staff, the CSRF token every form of the session must carry, and when it was last
used. A session ends at sign-out, after ``idle_minutes`` without use, after ``session_hours``
in all, or when its member of staff is disabled. A cookie of another desk (or of a session
this desk ended) names no session here and is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from matchhub.agency.desk.accounts import Staff
from matchhub.agency.desk.config import Settings
from matchhub.agency.desk.models import StaffSession, User, utcnow


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Opened:
    cookie: str
    csrf: str


@dataclass(frozen=True)
class Current:
    staff: Staff
    csrf: str
    session_id: str


def open_session(session: Session, user: User) -> Opened:
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.add(StaffSession(id=_digest(cookie), user_id=user.id, csrf=csrf))
    session.flush()
    return Opened(cookie, csrf)


def current(
    session: Session, cookie: str | None, settings: Settings, now: datetime | None = None
) -> tuple[Current | None, str | None]:
    """The session of `cookie`, touched; or None and why (``expired`` or ``unknown``)."""
    if not cookie or len(cookie) > 200:
        return None, None
    now = now or utcnow()
    row = session.get(StaffSession, _digest(cookie))
    if row is None or row.ended_at is not None:
        return None, "unknown"
    user = session.get(User, row.user_id)
    if user is None or user.disabled or _lapsed(row, settings, now):
        row.ended_at = now
        session.flush()
        return None, "expired"
    row.last_seen = now
    session.flush()
    return Current(Staff.of(user), row.csrf, row.id), None


def language(
    session: Session, cookie: str | None, settings: Settings, now: datetime | None = None
) -> str | None:
    """The language of the member of staff whose live session ``cookie`` names, for a page
    shown before (or instead of) the request's own reading: looked at, not touched. An ended,
    idle or too old session names no one, as :func:`current` would say."""
    if not cookie or len(cookie) > 200:
        return None
    now = now or utcnow()
    row = session.get(StaffSession, _digest(cookie))
    if row is None or row.ended_at is not None or _lapsed(row, settings, now):
        return None
    user = session.get(User, row.user_id)
    return user.language if user is not None and not user.disabled else None


def _lapsed(row: StaffSession, settings: Settings, now: datetime) -> bool:
    """Idle too long, or open too long."""
    idle = now - row.last_seen > timedelta(minutes=settings.idle_minutes)
    return idle or now - row.created_at > timedelta(hours=settings.session_hours)


def csrf_ok(expected: str, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())


def end(session: Session, session_id: str) -> None:
    row = session.get(StaffSession, session_id)
    if row is not None and row.ended_at is None:
        row.ended_at = utcnow()
        session.flush()


def end_all(session: Session, user_id: int) -> None:
    """Sign a member of staff out everywhere (they were disabled)."""
    session.execute(
        update(StaffSession)
        .where(StaffSession.user_id == user_id, StaffSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )
