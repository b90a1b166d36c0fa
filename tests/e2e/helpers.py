"""Shared by the end-to-end tests."""

from __future__ import annotations

import httpx

# How a refused TLS handshake reaches an httpx client (TLS 1.3 reports a refused client
# certificate on the first read, not in the handshake itself).
HANDSHAKE_REFUSED = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)
