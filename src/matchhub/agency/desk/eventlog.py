"""The desk's own log of sign-ins and actions: who, when, what, how it ended, and counts or
references (a match's number, a roster's version, how many IDs a lookup named). Never a
beneficiary's ID, name or token: `record` refuses detail values that look like one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from matchhub.agency.desk.models import Event
from matchhub.protocol.tokens import is_token, looks_like_raw_identifier


def record(
    session: Session, user: str | None, action: str, outcome: str = "ok", **details: Any
) -> Event:
    for name, value in details.items():
        # Strings only: counts are numbers, and a roster of 10,000,000 is not an ID.
        if isinstance(value, str) and (looks_like_raw_identifier(value) or is_token(value)):
            raise ValueError(f"the desk's log does not take identifiers ({name})")
    event = Event(user_name=user, action=action, outcome=outcome, details=details)
    session.add(event)
    session.flush()
    return event


def recent(session: Session, limit: int = 200, user: str | None = None) -> list[Event]:
    stmt = select(Event).order_by(Event.id.desc()).limit(limit)
    if user:
        stmt = stmt.where(Event.user_name == user)
    return list(session.scalars(stmt))
