"""Canonical JSON of audit entries: the exact bytes the Merkle leaf hash is computed over.

Keys sorted, no insignificant whitespace, UTF-8 without escaping, and no floating-point numbers
(their text form is not canonical across languages): integers, strings, booleans, null, lists
and objects only. An auditor's tool in any language re-serialises nothing; it hashes the stored
bytes and checks that they parse.
"""

from __future__ import annotations

import json
from typing import Any


def _check(value: Any, where: str) -> None:
    if isinstance(value, float):
        raise TypeError(f"audit entries hold no floats ({where})")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit entry keys are strings ({where})")
            _check(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]")


def canonical(body: dict[str, Any]) -> bytes:
    _check(body, "entry")
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
