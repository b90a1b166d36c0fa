"""An integer in a path or a query string: written as a plain decimal, as the API documents it.

pydantic's lax mode reads ``1.0``, ``00001``, `` 1``, ``+1`` and ``1_000`` in a query string as
numbers. Each is a client's mistake or a probe, and a guess would hide it: they are refused
with the same 422 as any other value out of range. (A JSON body's integers are strict already.)
"""

from __future__ import annotations

import re

from pydantic import BeforeValidator

_PLAIN = re.compile(r"0|-?[1-9][0-9]{0,18}", re.ASCII)  # no "-0" either


def _plain(value: object) -> object:
    if isinstance(value, str) and not _PLAIN.fullmatch(value):
        raise ValueError("a plain decimal integer: digits only, no leading zero, no fraction")
    return value


Plain = BeforeValidator(_plain)
"""After the parameter's own ``Query``/``Path``, as ``Annotated[int, Query(ge=1), Plain]``: so
the OpenAPI document still carries its bounds."""
