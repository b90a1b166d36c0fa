"""Who may call what: every route of the committed OpenAPI document, called by an agency of
every kind and by a client with no certificate, a revoked one, an unregistered one (signed by
the hub CA, never registered) and one of another CA, over real mutual TLS, against one table.

A cell is the status that caller gets for a minimal request: 403 where its kind lacks the
route's scope, and where it holds it, whatever the route answers a request with no useful
content (422 for an empty body, 404 for an id that does not exist). ``TLS`` is a handshake
the server refuses. The table is the contract: a route added to the document without a row
here, or a cell that moves, fails the test.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from matchhub.agency.connector.client import AgencyCredentials, make_client
from matchhub.keystore import pki
from matchhub.protocol.kinds import AgencyKind
from tests import pki as test_pki
from tests.conftest import RunningServer
from tests.e2e.helpers import HANDSHAKE_REFUSED

TLS = "TLS"
CALLERS = (
    "pension", "traffic", "bank", "trade", "education", "higher_education", "welfare", "auditor",
    "monitor", "no-cert", "revoked", "unregistered", "other-ca",
)  # fmt: skip
NO_ID = "0" * 32

# What each route is called with: path filled in, required query parameters, a JSON body.
REQUESTS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/v1/uploads/{upload_id}"): {"path": f"/v1/uploads/{NO_ID}"},
    ("DELETE", "/v1/uploads/{upload_id}"): {"path": f"/v1/uploads/{NO_ID}"},
    ("PUT", "/v1/uploads/{upload_id}/chunks/{seq}"): {
        "path": f"/v1/uploads/{NO_ID}/chunks/0",
        "content": b"",
        "headers": {"content-type": "application/x-ndjson"},
    },
    ("POST", "/v1/uploads/{upload_id}/commit"): {
        "path": f"/v1/uploads/{NO_ID}/commit",
        "json": {},
    },
    ("GET", "/v1/match-jobs/{job_id}"): {"path": f"/v1/match-jobs/{NO_ID}"},
    ("GET", "/v1/match-jobs/{job_id}/results"): {"path": f"/v1/match-jobs/{NO_ID}/results"},
    ("GET", "/v1/audit/proofs/inclusion"): {"params": {"seq": 0, "tree_size": 1}},
    ("GET", "/v1/audit/proofs/consistency"): {"params": {"old_size": 0, "new_size": 1}},
    ("POST", "/v1/uploads"): {"json": {}},
    ("POST", "/v1/lookups"): {"json": {}},
    ("POST", "/v1/match-jobs"): {"json": {}},
    ("POST", "/v1/cases"): {"json": {}},
    ("GET", "/v1/cases/{case_id}"): {"path": f"/v1/cases/{NO_ID}"},
    ("POST", "/v1/cases/{case_id}/transitions"): {
        "path": f"/v1/cases/{NO_ID}/transitions",
        "json": {},
    },
}


def _row(
    *, providers: int, welfare: int, auditor: int, unregistered: int, monitor: int = 403
) -> tuple[int | str, ...]:
    """The statuses in CALLERS order: the six provider kinds alike, the ministry, the audit
    office, the operator's monitor (metrics and liveness only), then what the TLS layer does
    (no certificate, revoked, other CA: refused at the handshake on every route) and an
    unregistered certificate of the hub's CA."""
    return (*[providers] * 6, welfare, auditor, monitor, TLS, TLS, unregistered, TLS)


# Liveness: any client the TLS layer admits, registered or not.
HEALTH = _row(providers=200, welfare=200, auditor=200, unregistered=200, monitor=200)
# The counts per route and the gauges: the monitor alone (web/metrics.py).
MONITOR = _row(providers=403, welfare=403, auditor=403, unregistered=401, monitor=200)
EVERY_AGENCY = _row(providers=200, welfare=200, auditor=200, unregistered=401)
AUDITORS = _row(providers=403, welfare=403, auditor=200, unregistered=401)
UPLOADERS_404 = _row(providers=404, welfare=404, auditor=403, unregistered=401)
UPLOADERS_422 = _row(providers=422, welfare=422, auditor=403, unregistered=401)
MINISTRY_404 = _row(providers=403, welfare=404, auditor=403, unregistered=401)
MINISTRY_422 = _row(providers=403, welfare=422, auditor=403, unregistered=401)

EXPECTED: dict[tuple[str, str], tuple[int | str, ...]] = {
    ("GET", "/healthz"): HEALTH,
    ("GET", "/readyz"): HEALTH,
    ("GET", "/v1/whoami"): _row(
        providers=200, welfare=200, auditor=200, unregistered=401, monitor=200
    ),
    ("GET", "/v1/flags"): EVERY_AGENCY,
    ("GET", "/v1/audit/checkpoint"): EVERY_AGENCY,  # every agency witnesses the log
    ("GET", "/v1/audit/proofs/consistency"): EVERY_AGENCY,
    ("GET", "/v1/audit/entries"): AUDITORS,
    ("GET", "/v1/audit/proofs/inclusion"): AUDITORS,
    ("POST", "/v1/uploads"): UPLOADERS_422,  # providers' snapshots, the ministry's roster
    ("GET", "/v1/uploads/{upload_id}"): UPLOADERS_404,
    ("DELETE", "/v1/uploads/{upload_id}"): UPLOADERS_404,
    ("PUT", "/v1/uploads/{upload_id}/chunks/{seq}"): UPLOADERS_404,
    ("POST", "/v1/uploads/{upload_id}/commit"): UPLOADERS_422,
    ("POST", "/v1/lookups"): MINISTRY_422,
    ("POST", "/v1/match-jobs"): MINISTRY_422,
    ("GET", "/v1/match-jobs/{job_id}"): MINISTRY_404,
    ("GET", "/v1/match-jobs/{job_id}/results"): MINISTRY_404,
    ("POST", "/v1/cases"): MINISTRY_422,
    ("GET", "/v1/cases"): _row(providers=403, welfare=200, auditor=403, unregistered=401),
    ("GET", "/v1/cases/{case_id}"): MINISTRY_404,
    ("POST", "/v1/cases/{case_id}/transitions"): MINISTRY_422,
    # A provider reads how its own flags fared; the ministry its confirmation rates.
    ("GET", "/v1/feedback"): _row(providers=200, welfare=200, auditor=403, unregistered=401),
    ("GET", "/metrics"): MONITOR,
}


def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(Path("openapi/openapi.json").read_text())
    return document


def _routes() -> Iterator[tuple[str, str]]:
    for path, operations in _document()["paths"].items():
        for method in operations:
            yield method.upper(), path


@pytest.fixture
def callers(server: RunningServer) -> Iterator[dict[str, httpx.Client]]:
    """A client for each caller; each agency of a kind registered, one revoked."""
    hub = server.hub
    credentials: dict[str, AgencyCredentials] = {}
    for kind in AgencyKind:
        credentials[kind.value] = hub.add_agency(f"x-{kind.value.replace('_', '-')}", kind)
    credentials["revoked"] = hub.add_agency("gone", AgencyKind.bank)
    hub.revoke("gone")
    ghost = pki.issue_client(hub.ca, hub.settings.hub_name, "ghost", "TEST-ONLY ghost")
    credentials["unregistered"] = test_pki.write_credentials(
        hub.agencies_dir / "ghost", "ghost", ghost, hub.ca_pem
    )
    rogue = pki.issue_client(
        test_pki.other_ca(hub.settings.hub_name), hub.settings.hub_name, "bank", "TEST-ONLY rogue"
    )
    credentials["other-ca"] = test_pki.write_credentials(
        hub.agencies_dir / "rogue", "rogue", rogue, hub.ca_pem
    )
    clients = {name: make_client(server.url, c, attempts=1) for name, c in credentials.items()}
    bare = ssl.create_default_context(cafile=str(hub.paths.ca_cert))
    clients["no-cert"] = httpx.Client(base_url=server.url, verify=bare)
    yield clients
    for client in clients.values():
        client.close()


def _call(client: httpx.Client, method: str, path: str) -> int | str:
    spec = dict(REQUESTS.get((method, path), {}))
    target = spec.pop("path", path)
    try:
        return client.request(method, target, **spec).status_code
    except HANDSHAKE_REFUSED:
        return TLS


def test_the_authorisation_matrix(callers: dict[str, httpx.Client]) -> None:
    found = {
        (method, path): tuple(_call(callers[caller], method, path) for caller in CALLERS)
        for method, path in _routes()
    }
    assert set(found) == set(EXPECTED), "a route without a row, or a row without a route"
    moved = {
        f"{method} {path}": {
            caller: (want, got)
            for caller, want, got in zip(CALLERS, EXPECTED[(method, path)], cells, strict=True)
            if want != got
        }
        for (method, path), cells in found.items()
        if cells != EXPECTED[(method, path)]
    }
    assert moved == {}, "caller: (expected, found)"
