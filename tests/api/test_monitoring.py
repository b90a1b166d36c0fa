"""What the broker tells whom (issue 13 item 8): ``/metrics`` only to a ``monitor`` agency's
certificate; ``/readyz`` to anyone the TLS layer admits, and only liveness facts."""

from __future__ import annotations

import gc

import pytest

from matchhub.keystore import pki
from matchhub.kit import heap
from matchhub.protocol.kinds import AgencyKind
from tests import pki as test_pki
from tests.conftest import InProcessApi


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        (AgencyKind.welfare, 403, "scope_denied"),
        (AgencyKind.bank, 403, "scope_denied"),
        (AgencyKind.auditor, 403, "scope_denied"),
        (AgencyKind.monitor, 200, None),
    ],
)
def test_only_a_monitor_reads_the_metrics(
    api: InProcessApi, kind: AgencyKind, status: int, code: str | None
) -> None:
    api.hub.add_agency("caller", kind)
    with api.client("caller") as client:
        client.get("/v1/whoami")
        response = client.get("/metrics")
    assert response.status_code == status
    if code is not None:
        assert response.json()["error"]["code"] == code
        assert "matchhub_http_requests" not in response.text
    else:
        assert 'route="/v1/whoami",status="200"' in response.text


def test_unregistered_and_absent_certificates_read_no_metrics(api: InProcessApi) -> None:
    hub = api.hub
    ghost = pki.issue_client(hub.ca, hub.settings.hub_name, "ghost", "TEST-ONLY ghost")
    creds = test_pki.write_credentials(hub.agencies_dir / "ghost", "ghost", ghost, hub.ca_pem)
    for client in (api.client(creds), api.client(None)):
        with client:
            response = client.get("/metrics")
        assert response.status_code == 401
        assert "matchhub_" not in response.text


def test_a_monitor_may_do_nothing_else(api: InProcessApi) -> None:
    api.hub.add_agency("prometheus", AgencyKind.monitor)
    with api.client("prometheus") as client:
        assert client.get("/v1/whoami").json()["scopes"] == ["identity:read", "metrics:read"]
        for path in ("/v1/flags", "/v1/audit/checkpoint", "/v1/audit/entries"):
            assert client.get(path).status_code == 403, path
        refused = client.post("/v1/lookups", json={"purpose": "x", "tokens": []})
        assert refused.status_code == 403


def test_readyz_tells_liveness_only(api: InProcessApi) -> None:
    api.hub.add_agency("bank", AgencyKind.bank)
    with api.client("bank") as client:
        body = client.get("/readyz").json()
    assert body == {
        "status": "ready",
        "checks": {"database": "ok", "keys": "ok"},
        "processes": body["processes"],
    }
    assert set(body["processes"]) <= {"serve", "worker"}


def test_the_app_serves_settled(api: InProcessApi) -> None:
    """What its start made is frozen for the collector while it serves (kit/heap.py)."""
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] >= heap.YOUNG
    with api.client(None) as client:
        assert client.get("/healthz").status_code == 200
