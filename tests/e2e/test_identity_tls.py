"""Mutual TLS end to end: a real uvicorn server on 127.0.0.1, real httpx clients."""

from __future__ import annotations

import ssl

import httpx
import pytest
from structlog.testing import capture_logs

from matchhub.agency.connector.client import AgencyCredentials, make_client
from matchhub.identity.scopes import KIND_SCOPES
from matchhub.keystore import pki
from matchhub.protocol.kinds import AgencyKind
from tests import pki as test_pki
from tests.conftest import RunningServer
from tests.e2e.helpers import HANDSHAKE_REFUSED, assert_refused_at_handshake, metric_samples


def _get(
    server: RunningServer, creds: AgencyCredentials, path: str, attempts: int = 5
) -> httpx.Response:
    with make_client(server.url, creds, attempts=attempts) as client:
        return client.get(path)


def test_registered_agency_is_identified(server: RunningServer) -> None:
    creds = server.hub.add_agency("molsa", AgencyKind.welfare, "Ministry of Labour")
    response = _get(server, creds, "/v1/whoami")
    assert response.status_code == 200
    body = response.json()
    cert = pki.load_ca(creds.certificate, creds.key).certificate
    assert body["code"] == "molsa"
    assert body["kind"] == "welfare"
    assert body["name"] == "Ministry of Labour"
    assert set(body["scopes"]) == {s.value for s in KIND_SCOPES[AgencyKind.welfare]}
    assert body["certificate_fingerprint"] == pki.fingerprint(cert)


def test_no_client_certificate_is_refused_at_the_handshake(server: RunningServer) -> None:
    good = server.hub.add_agency("molsa", AgencyKind.welfare)
    context = ssl.create_default_context(cafile=str(server.hub.paths.ca_cert))

    def without_certificate() -> None:
        with httpx.Client(base_url=server.url, verify=context) as client:
            client.get("/v1/whoami")

    assert_refused_at_handshake(server.url, good, without_certificate)


def test_client_must_verify_the_hub(server: RunningServer) -> None:
    """The agency's client refuses a server whose certificate is not from the hub CA."""
    creds = server.hub.add_agency("pension", AgencyKind.pension)
    rogue = test_pki.other_ca("matchhub")
    rogue_ca_file = creds.ca.parent / "rogue-ca.pem"
    rogue_ca_file.write_bytes(pki.cert_pem(rogue.certificate))
    misled = AgencyCredentials(creds.certificate, creds.key, rogue_ca_file)
    with make_client(server.url, misled) as client, pytest.raises(httpx.ConnectError) as refused:
        client.get("/v1/whoami")
    assert "CERTIFICATE_VERIFY_FAILED" in repr(refused.value.__context__ or refused.value)
    with make_client(server.url, creds) as client:  # the same server, trusted: it answers
        assert client.get("/v1/whoami").status_code == 200


@pytest.mark.parametrize("case", ["other_ca", "expired", "wrong_usage"])
def test_bad_certificates_are_refused(server: RunningServer, case: str) -> None:
    hub = server.hub
    good = hub.add_agency("pension", AgencyKind.pension)
    if case == "other_ca":
        issued = pki.issue_client(
            test_pki.other_ca(hub.settings.hub_name),
            hub.settings.hub_name,
            "pension",
            "TEST-ONLY rogue",
        )
        creds = test_pki.write_credentials(hub.agencies_dir / case, case, issued, hub.ca_pem)
    elif case == "expired":
        issued = test_pki.expired_client(hub.ca, hub.settings.hub_name, "pension")
        creds = hub.register_certificate("pension", issued, case)
    else:
        issued = test_pki.wrong_usage_client(hub.ca, hub.settings.hub_name, "pension")
        creds = hub.register_certificate("pension", issued, case)
    # One try: the refusal itself, not the client's retries of it (TLS 1.3 reports a refused
    # client certificate at the first read, which the client cannot tell from a lost answer).
    assert_refused_at_handshake(
        server.url, good, lambda: _get(server, creds, "/v1/whoami", attempts=1)
    )


def test_unregistered_agency_is_refused(server: RunningServer) -> None:
    """Signed by the hub CA, but never recorded: the registry has the last word."""
    hub = server.hub
    hub.add_agency("pension", AgencyKind.pension)
    issued = pki.issue_client(hub.ca, hub.settings.hub_name, "ghost", "TEST-ONLY ghost")
    creds = test_pki.write_credentials(hub.agencies_dir / "ghost", "ghost", issued, hub.ca_pem)
    response = _get(server, creds, "/v1/whoami")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "certificate_unknown"


def test_revocation_takes_effect_while_the_server_runs(server: RunningServer) -> None:
    hub = server.hub
    creds = hub.add_agency("traffic", AgencyKind.traffic)
    bystander = hub.add_agency("bank", AgencyKind.bank)
    with make_client(server.url, creds) as open_connection:
        assert open_connection.get("/v1/whoami").status_code == 200
        hub.revoke("traffic")
        # The connection already open: the registry refuses the very next request.
        response = open_connection.get("/v1/whoami")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "certificate_revoked"
    # A new connection: the CRL, reloaded without a restart, refuses the handshake.
    assert_refused_at_handshake(
        server.url, bystander, lambda: _get(server, creds, "/v1/whoami", attempts=1)
    )


def test_errors_have_one_shape(server: RunningServer) -> None:
    creds = server.hub.add_agency("molsa", AgencyKind.welfare)
    response = _get(server, creds, "/v1/no-such-route")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not Found"}}


def test_health_endpoints(server: RunningServer) -> None:
    creds = server.hub.add_agency("molsa", AgencyKind.welfare)
    assert _get(server, creds, "/healthz").json() == {"status": "ok"}
    ready = _get(server, creds, "/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "keys": "ok"}


def test_metrics_count_routes_not_paths(server: RunningServer) -> None:
    creds = server.hub.add_agency("molsa", AgencyKind.welfare)
    with make_client(server.url, creds) as client:
        for _ in range(3):
            assert client.get("/v1/whoami").status_code == 200
        client.get("/v1/match-jobs/" + "ab" * 16)
        assert client.get("/metrics").status_code == 403  # not a monitor
    monitor = server.hub.add_agency("prometheus", AgencyKind.monitor)
    with make_client(server.url, monitor) as client:
        text = client.get("/metrics").text
    assert 'matchhub_http_requests_total{method="GET",route="/v1/whoami",status="200"} 3.0' in text
    assert 'route="/v1/match-jobs/{job_id}",status="404"' in text
    assert "ab" * 16 not in text
    assert "matchhub_audit_entries " in text
    assert 'matchhub_jobs{state="queued"} 0.0' in text


def test_refused_handshakes_are_counted_and_logged_by_fingerprint(server: RunningServer) -> None:
    hub = server.hub
    hub.add_agency("traffic", AgencyKind.traffic)
    revoked = hub.credentials["traffic"]
    hub.revoke("traffic")
    rogue = pki.issue_client(
        test_pki.other_ca(hub.settings.hub_name), hub.settings.hub_name, "rogue", "TEST-ONLY"
    )
    other_ca = test_pki.write_credentials(hub.agencies_dir / "rogue", "rogue", rogue, hub.ca_pem)
    bare = ssl.create_default_context(cafile=str(hub.paths.ca_cert))
    with capture_logs() as logs:
        for creds in (revoked, other_ca):  # one attempt each: the client retries by default
            with (
                make_client(server.url, creds, attempts=1) as client,
                pytest.raises(HANDSHAKE_REFUSED),
            ):
                client.get("/v1/whoami")
        with (
            httpx.Client(base_url=server.url, verify=bare) as client,
            pytest.raises(HANDSHAKE_REFUSED),
        ):
            client.get("/v1/whoami")
    monitor = hub.add_agency("prometheus", AgencyKind.monitor)
    with make_client(server.url, monitor) as client:  # a good client gets through
        refused = metric_samples(client, "matchhub_tls_handshakes_refused_total")
    counts = {dict(labels)["reason"]: value for labels, value in refused.items()}
    assert counts == {
        "no_certificate": 1,
        "unknown_ca": 1,
        "revoked": 1,
        "expired": 0,
        "bad_certificate": 0,
        "other": 0,
    }
    seen = {(e["reason"], e["certificate"]) for e in logs if e["event"] == "tls handshake refused"}
    revoked_cert = pki.load_ca(revoked.certificate, revoked.key).certificate
    assert seen == {
        ("revoked", pki.fingerprint(revoked_cert)),
        ("unknown_ca", pki.fingerprint(rogue.certificate)),
        ("no_certificate", None),
    }
    # Nothing of a certificate but its fingerprint: no subject, no PEM.
    refusals = [e for e in logs if e["event"] == "tls handshake refused"]
    assert all(set(e) == {"event", "log_level", "reason", "certificate"} for e in refusals)
