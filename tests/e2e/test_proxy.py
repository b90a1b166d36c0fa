"""A real nginx terminating mutual TLS in front of the broker, with deploy/nginx-matchhub.conf."""

from __future__ import annotations

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

from matchhub.agency.connector.client import AgencyCredentials, make_client
from matchhub.cli.processes import free_port
from matchhub.keystore import pki
from matchhub.kit.settings import Settings
from matchhub.protocol.kinds import AgencyKind
from matchhub.web.server import build_server
from tests import pki as test_pki
from tests.conftest import Hub
from tests.e2e.helpers import HANDSHAKE_REFUSED

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "nginx-matchhub.conf"


@dataclass
class Fronted:
    hub: Hub
    edge: str  # nginx
    broker: str  # the broker itself
    proxy: AgencyCredentials


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
    broker_port, edge_port = free_port(), free_port()
    server = build_server(settings, port=broker_port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    conf = TEMPLATE.read_text()
    for name, value in {
        "@LISTEN@": f"127.0.0.1:{edge_port}",
        "@SERVER_NAME@": "localhost",
        "@STATE@": str(hub.settings.home),
        "@BROKER@": f"127.0.0.1:{broker_port}",
        "@BROKER_NAME@": "localhost",
        "@PROXY_CERT@": str(proxy.certificate),
        "@PROXY_KEY@": str(proxy.key),
    }.items():
        conf = conf.replace(name, value)
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
        while not server.started or not _listening(edge_port):
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited: {(prefix / 'logs' / 'error.log').read_text()}")
            assert time.monotonic() < deadline, "nginx or the broker did not start"
            time.sleep(0.05)
        yield Fronted(
            hub, f"https://127.0.0.1:{edge_port}", f"https://127.0.0.1:{broker_port}", proxy
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
        server.should_exit = True
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
    hub.add_agency("pension", AgencyKind.pension)
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
