"""An instant in a query or a body: ISO 8601 with its offset, within what a UTC column holds.

pydantic alone would read ``0.5`` as seconds after 1970 and hand a naive time to a UTC column,
and take ``0001-01-01T00:00:00+14:00``, which has no UTC form (``astimezone`` overflows: a 500
where a 422 belongs).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

_ISO_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})", re.ASCII
)


def _iso_instant(value: object) -> object:
    if isinstance(value, str) and not _ISO_INSTANT.fullmatch(value):
        raise ValueError("an ISO 8601 date and time with its offset, as 2026-12-01T00:00:00Z")
    return value


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("a date and time between the years 1 and 9999 in UTC") from None


Instant = Annotated[AwareDatetime, BeforeValidator(_iso_instant), AfterValidator(_in_utc)]
