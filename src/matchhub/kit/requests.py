"""What a route may ask of its request's unit of work, and nothing of how it is done.

The domains' endpoints sit below the web layer, which owns the request's transaction and its
audit record (:mod:`matchhub.web.uow`). They declare what they need through the dependencies
here; the app provides the implementation as ``app.state.unit_of_work`` (a
:class:`UnitOfWork`). So a domain imports nothing of the web layer, and the web layer is the
one place that decides when a request commits and how its audit entry is written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, contextmanager
from typing import Annotated, Any, Protocol, cast

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from matchhub.kit.clock import Clock
from matchhub.kit.errors import MatchhubError, ServiceUnavailable
from matchhub.kit.settings import Settings

AUDIT_NOTE = "audit_note"


class UnitOfWork(Protocol):
    def session(self, request: Request) -> AbstractAsyncContextManager[Session]:
        """The request's one transaction, committed with its audit record at the end."""

    def reader(self) -> AbstractContextManager[Session]:
        """A read-only session of its own, outside the request's transaction and its audit
        record: for the registry read of a caller the lookups' view could not vouch for,
        before the route runs (identity/auth.py ``require_viewed``)."""

    async def record_answer(self, request: Request) -> int | None:
        """Commit the request's audit entry now and return its sequence number (``None`` when
        the log is off); for a caller authenticated from the lookups' view, on condition that
        the view's generation is still the database's
        (:class:`~matchhub.kit.errors.StaleGeneration` if not)."""


def _unit_of_work(request: Request) -> UnitOfWork:
    return cast(UnitOfWork, request.app.state.unit_of_work)


async def get_session(request: Request) -> AsyncIterator[Session]:
    async with _unit_of_work(request).session(request) as session:
        yield session


def request_session(request: Request) -> AbstractAsyncContextManager[Session]:
    """What :data:`SessionDep` gives, for a route that needs the request's transaction only
    on one of its paths (a lookup answered from the database rather than from the view): the
    dependency costs every request its share of the event loop's time, used or not."""
    return _unit_of_work(request).session(request)


def read_session(request: Request) -> AbstractContextManager[Session]:
    """A read-only session outside the request's transaction (:meth:`UnitOfWork.reader`)."""
    return _unit_of_work(request).reader()


def settings_of(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


async def get_settings(request: Request) -> Settings:
    return settings_of(request)


async def get_clock(request: Request) -> Clock:
    """The app's one clock (kit/clock.py): every rule that reads the time reads this."""
    return cast(Clock, request.app.state.clock)


# scope="function": the session ends (commit or rollback) before the response is sent.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ClockDep = Annotated[Clock, Depends(get_clock)]


def note_of(request: Request) -> dict[str, Any]:
    """What a route adds to its audit entry (purpose, counts, ids, subject digests)."""
    state = request.scope.setdefault("state", {})
    return cast(dict[str, Any], state.setdefault(AUDIT_NOTE, {}))


async def audit_note(request: Request) -> dict[str, Any]:
    return note_of(request)


AuditNote = Annotated[dict[str, Any], Depends(audit_note)]


async def read_only() -> None:
    """Marks a route that changes nothing. Its session reads through the read-only engine (the
    database refuses a write there), and its audit entry goes through the group-commit writer
    before the response is sent."""


ReadOnly = Depends(read_only)


async def chunk_sized() -> None:
    """Marks a route whose body is an upload chunk: up to ``max_chunk_bytes``, where any other
    body is at most ``max_body_bytes`` (web/gate.py reads it before the route runs)."""


ChunkSized = Depends(chunk_sized)


def marked_chunk_sized(route: Any) -> bool:
    dependant = getattr(route, "dependant", None)
    return dependant is not None and any(d.call is chunk_sized for d in dependant.dependencies)


def is_read_only(request: Request) -> bool:
    """Whether the request's route is marked :data:`ReadOnly`, read from the route itself, so
    it is known before any of the route's dependencies has run."""
    route = request.scope.get("route")
    return route is not None and marked_read_only(route)


def marked_read_only(route: Any) -> bool:
    dependant = getattr(route, "dependant", None)
    return dependant is not None and any(d.call is read_only for d in dependant.dependencies)


async def record_answer(request: Request) -> int | None:
    """From inside a read-only route: append its entry now and return its sequence number
    (``None`` when the log is off). For a caller authenticated from the in-memory view, only
    on condition that the view's generation is still the database's: raises
    :class:`~matchhub.kit.errors.StaleGeneration` if it is not, having appended nothing and
    forgotten the view; the route must then answer from the database (and its entry is
    recorded as usual), or let the error answer 503."""
    return await _unit_of_work(request).record_answer(request)


@contextmanager
def audit_fail_closed() -> Iterator[None]:
    """No record, no answer: a failure to write the audit record (anything but a refusal of
    ours, such as a view the hub moved past) becomes 503."""
    try:
        yield
    except MatchhubError:
        raise
    except Exception as exc:
        raise ServiceUnavailable(
            "the audit record could not be written; nothing was done", code="audit_unavailable"
        ) from exc
