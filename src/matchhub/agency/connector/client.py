"""An httpx client for an agency: mutual TLS with its certificate, pinned to the hub CA.

Verification is never switched off: the server must present a certificate from the hub's CA,
and the agency presents its own. Timeouts are explicit.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=120.0, pool=10.0)


@dataclass(frozen=True)
class AgencyCredentials:
    certificate: Path
    key: Path
    ca: Path

    @classmethod
    def in_folder(cls, folder: Path, code: str) -> AgencyCredentials:
        """The layout ``matchhub agency add --out`` writes."""
        return cls(folder / f"{code}.pem", folder / f"{code}-key.pem", folder / "ca.pem")

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.certificate, self.key)
        return context


def make_client(
    base_url: str,
    credentials: AgencyCredentials,
    *,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        verify=credentials.ssl_context(),
        timeout=timeout,
        transport=transport,
        headers={"user-agent": "matchhub-connect"},
    )
