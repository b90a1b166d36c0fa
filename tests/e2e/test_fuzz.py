"""schemathesis over the committed OpenAPI document, against the real server over mutual TLS,
with each agency kind's certificate: generated requests to every operation, bounded so CI
stays within minutes (EXAMPLES per operation and kind, no deadline, no example database).
Every answer must be no 5xx and match the document: a status it lists for the operation, its
content type and, for JSON, its schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation

from matchhub.protocol import wire
from matchhub.protocol.kinds import AgencyKind
from tests.conftest import RunningServer

DOCUMENT = Path(__file__).parents[2] / "openapi" / "openapi.json"
EXAMPLES = 6
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _raw_body(_context: schemathesis.SerializationContext, value: object) -> bytes:
    """A chunk body as generated (a string for NDJSON, bytes for the compact format)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    data = getattr(value, "data", None)  # schemathesis' own binary value
    if isinstance(data, bytes):
        return data
    return str(value).encode("utf-8")


@pytest.fixture
def sessions(server: RunningServer) -> Iterator[dict[str, requests.Session]]:
    """One HTTPS session per agency kind, each with a registered agency's certificate."""
    found: dict[str, requests.Session] = {}
    for kind in AgencyKind:
        creds = server.hub.add_agency(f"fuzz-{kind.value.replace('_', '-')}", kind)
        session = requests.Session()
        session.cert = (str(creds.certificate), str(creds.key))
        session.verify = str(creds.ca)
        found[kind.value] = session
    yield found
    for session in found.values():
        session.close()


def _fuzz(operation: APIOperation, session: requests.Session, base_url: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def answered(case: Case) -> None:
        # schemathesis passes its own `verify` unless told: the session's TLS settings, again.
        response = case.call(
            base_url=base_url,
            session=session,
            timeout=30,
            verify=session.verify,
            cert=session.cert,
        )
        case.validate_response(response, checks=CHECKS)

    answered()


def test_generated_requests_get_documented_answers(
    server: RunningServer, sessions: dict[str, requests.Session]
) -> None:
    schemathesis.serializer(wire.NDJSON, wire.COMPACT)(_raw_body)
    schema = schemathesis.openapi.from_path(DOCUMENT)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    for operation in operations:
        for kind, session in sessions.items():
            try:
                _fuzz(operation, session, server.url)
            except Exception as exc:
                raise AssertionError(f"{operation.label} as {kind}: {exc}") from exc
