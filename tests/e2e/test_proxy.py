"""A real nginx terminating mutual TLS in front of two broker processes, with
deploy/nginx-matchhub.conf."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from matchhub.agency.connector.client import AgencyCredentials, make_client
from matchhub.agency.connector.push import push
from matchhub.audit.models import AuditEntry
from matchhub.cli.processes import free_port
from matchhub.keystore import pki
from matchhub.kit.settings import Settings
from matchhub.protocol.kinds import AgencyKind
from matchhub.web.server import build_server
from tests import pki as test_pki
from tests.conftest import Hub
from tests.e2e.helpers import HANDSHAKE_REFUSED, national_ids, stored, tokens, visible_flags

LOAN = "bank.large_loan"
TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "nginx-matchhub.conf"


@dataclass
class Fronted:
    hub: Hub
    edge: str  # nginx
    broker: str  # the first broker itself
    proxy: AgencyCredentials
    servers: list[uvicorn.Server]

    def requests_seen(self, n: int, route: str) -> float:
        """Requests for ``route`` broker ``n`` answered, by its own metrics."""
        metrics = self.servers[n].config.app.state.metrics
        value = metrics.registry.get_sample_value(
            "matchhub_http_requests_total", {"method": "GET", "route": route, "status": "200"}
        )
        return float(value or 0)


@pytest.fixture
def fronted(hub: Hub, tmp_path: Path) -> Iterator[Fronted]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is needed for this test: scripts/ensure-services installs it")
    issued = pki.issue_client(
        hub.ca,
        hub.settings.hub_name,
        "edge",
        "TEST-ONLY edge proxy",
        uri=pki.proxy_uri(hub.settings.hub_name, "edge"),
    )
    proxy = test_pki.write_credentials(tmp_path / "proxy", "edge", issued, hub.ca_pem)
    settings = Settings(
        **{
            **hub.settings.model_dump(),
            "client_cert_source": "proxy",
            "trusted_proxy_fingerprints": [pki.fingerprint(issued.certificate)],
        }
    )
    ports, edge_port = [free_port(), free_port()], free_port()
    servers = [build_server(settings, port=port) for port in ports]
    threads = [threading.Thread(target=server.run, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    conf = TEMPLATE.read_text()
    upstream = " ".join(f"server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" for port in ports)
    for name, value in {
        "@LISTEN@": f"127.0.0.1:{edge_port}",
        "@SERVER_NAME@": "localhost",
        "@STATE@": str(hub.settings.home),
        "@UPSTREAM_SERVERS@": upstream,
        "@BROKER_NAME@": "localhost",
        "@PROXY_CERT@": str(proxy.certificate),
        "@PROXY_KEY@": str(proxy.key),
    }.items():
        conf = conf.replace(name, value)
    directives = [line for line in conf.splitlines() if not line.lstrip().startswith("#")]
    assert not any("@" in line for line in directives), "a placeholder was left unfilled"
    prefix = tmp_path / "nginx"
    (prefix / "logs").mkdir(parents=True)
    (prefix / "site.conf").write_text(conf)
    (prefix / "nginx.conf").write_text(
        "user root; worker_processes 1; daemon off; error_log logs/error.log;\n"
        "pid logs/nginx.pid; events { worker_connections 64; }\n"
        "http { access_log off; client_body_temp_path logs/body; proxy_temp_path logs/proxy;\n"
        f"include {prefix / 'site.conf'}; }}\n"
    )
    process = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not all(server.started for server in servers) or not _listening(edge_port):
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited: {(prefix / 'logs' / 'error.log').read_text()}")
            assert time.monotonic() < deadline, "nginx or the broker did not start"
            time.sleep(0.05)
        yield Fronted(
            hub, f"https://127.0.0.1:{edge_port}", f"https://127.0.0.1:{ports[0]}", proxy, servers
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
        for server in servers:
            server.should_exit = True
        for thread in threads:
            thread.join(timeout=20)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_agencies_are_identified_through_the_proxy(fronted: Fronted) -> None:
    molsa = fronted.hub.add_agency("molsa", AgencyKind.welfare)
    with make_client(fronted.edge, molsa) as client:
        response = client.get("/v1/whoami")
    assert response.status_code == 200, response.text
    assert (response.json()["code"], response.json()["kind"]) == ("molsa", "welfare")


def test_the_header_is_believed_only_from_the_proxy(fronted: Fronted) -> None:
    hub = fronted.hub
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    forged = {"x-client-cert": quote(molsa.certificate.read_text()), "x-client-verify": "SUCCESS"}
    # An agency going around the proxy, claiming to be another: refused.
    with make_client(fronted.broker, bank) as client:
        response = client.get("/v1/whoami", headers=forged)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "proxy_not_trusted"
    # Through the proxy, a client's own copy of the header is overwritten by nginx.
    with make_client(fronted.edge, bank) as client:
        assert client.get("/v1/whoami", headers=forged).json()["code"] == "rafidain"


def test_the_proxy_refuses_clients_without_a_hub_certificate(fronted: Fronted) -> None:
    hub = fronted.hub
    good = hub.add_agency("pension", AgencyKind.pension)
    with make_client(fronted.edge, good) as client:  # the proxy is up and lets agencies in
        assert client.get("/v1/whoami").json()["code"] == "pension"
    rogue = pki.issue_client(
        test_pki.other_ca("matchhub"), hub.settings.hub_name, "pension", "TEST-ONLY rogue"
    )
    creds = test_pki.write_credentials(hub.agencies_dir / "rogue", "rogue", rogue, hub.ca_pem)
    with make_client(fronted.edge, creds) as client:
        try:
            response = client.get("/v1/whoami")
        except HANDSHAKE_REFUSED:
            return
    assert response.status_code == 400  # nginx: "The SSL certificate error"
    assert "certificate" in response.text.lower()
    assert isinstance(response, httpx.Response)


def test_nginx_spreads_requests_over_both_brokers_and_passes_over_a_stopped_one(
    fronted: Fronted,
) -> None:
    hub = fronted.hub
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    toks = tokens(key, national_ids(40, seed=41))
    with make_client(fronted.edge, bank) as client:
        for _ in range(10):
            assert client.get("/v1/whoami").status_code == 200
        seen = [fronted.requests_seen(n, "/v1/whoami") for n in (0, 1)]
        assert seen[0] + seen[1] == 10
        assert min(seen) >= 3, seen  # round robin, roughly
        # An upload's chunks go wherever nginx sends them; the commit checks them all.
        result = push(client, kind="flags", key_version=key.version, flags=[LOAN],
                      rows=[(t, [LOAN]) for t in toks.values()], chunk_rows=4)  # fmt: skip
        assert result.upload["state"] == "committed"
        gets = [fronted.requests_seen(n, "/v1/uploads/{upload_id}") for n in (0, 1)]
        fronted.servers[1].should_exit = True  # one broker process stops
        deadline = time.monotonic() + 20
        while _listening(int(fronted.servers[1].config.port)):
            assert time.monotonic() < deadline, "the broker did not stop"
            time.sleep(0.05)
        statuses = [client.get("/v1/whoami").status_code for _ in range(6)]
    assert statuses == [200] * 6  # nginx passes over the stopped one
    assert sum(gets) >= 1
    assert visible_flags(hub) == {stored(hub, t): {("rafidain", LOAN)} for t in toks.values()}


def test_a_refused_request_is_recorded_with_the_clients_certificate(fronted: Fronted) -> None:
    """Behind the proxy, the audit entry of a refusal names the client's certificate (the one
    adapter, identity/peer.py), never the proxy's."""
    hub = fronted.hub
    ghost = pki.issue_client(hub.ca, hub.settings.hub_name, "ghost", "TEST-ONLY ghost")
    creds = test_pki.write_credentials(hub.agencies_dir / "ghost", "ghost", ghost, hub.ca_pem)
    with make_client(fronted.edge, creds) as client:
        assert client.get("/v1/whoami").status_code == 401
    with hub.session() as session:
        last = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert last is not None
    entry = json.loads(last.body)
    assert (entry["route"], entry["error"]) == ("/v1/whoami", "certificate_unknown")
    assert entry["certificate"] == pki.fingerprint(ghost.certificate)


def test_the_monitor_scrapes_each_broker_directly(fronted: Fronted) -> None:
    """deploy/README.md: Prometheus scrapes every broker process itself, around nginx, with
    its monitor certificate; a direct connection is identified by its own certificate."""
    monitor = fronted.hub.add_agency("prometheus", AgencyKind.monitor)
    bank = fronted.hub.add_agency("rafidain", AgencyKind.bank)
    with make_client(fronted.broker, monitor) as client:
        assert client.get("/metrics").status_code == 200
    with make_client(fronted.broker, bank) as client:
        assert client.get("/metrics").status_code == 403
        assert client.get("/v1/whoami").json()["code"] == "rafidain"
