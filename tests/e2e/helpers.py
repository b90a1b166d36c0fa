"""Shared by the end-to-end tests: synthetic identifiers, tokens, and what the broker holds."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from matchhub.agency.connector.client import AgencyCredentials, make_client
from matchhub.audit import service as audit
from matchhub.identity.models import Agency
from matchhub.keystore.material import load_key_material
from matchhub.keystore.rekey import Rekeyer
from matchhub.protocol.tokens import MatchingKey, Tokeniser
from matchhub.protocol.verify import Report, verify_export
from matchhub.uploads.models import Snapshot, SnapshotState, snapshot_rows
from tests.conftest import Hub

# How a refused TLS handshake reaches an httpx client (TLS 1.3 reports a refused client
# certificate on the first read, not in the handshake itself). A plain connection error is one
# of them too: assert a refusal with assert_refused_at_handshake, never with these alone.
HANDSHAKE_REFUSED = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)


def assert_refused_at_handshake(
    url: str, good: AgencyCredentials, attempt: Callable[[], object]
) -> None:
    """``attempt`` fails at the TLS handshake while ``good``, a registered agency, gets through
    to the same ``url`` just before and just after: the refusal is the server's, not a server
    that is not listening (which HANDSHAKE_REFUSED would let pass)."""

    def through() -> None:
        with make_client(url, good) as client:
            assert client.get("/v1/whoami").status_code == 200

    through()
    with pytest.raises(HANDSHAKE_REFUSED):
        attempt()
    through()


def national_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    ids: set[str] = set()
    while len(ids) < count:
        ids.add(f"{rng.randrange(10**11, 10**12)}")
    return sorted(ids)


def tokens(key: MatchingKey, ids: list[str]) -> dict[str, str]:
    tokeniser = Tokeniser(key, "iq.ncn")
    return {raw: tokeniser.token(raw) for raw in ids}


def stored(hub: Hub, wire_hex: str) -> bytes:
    rekeyer = Rekeyer(load_key_material(hub.paths).broker_key.value)
    return rekeyer.rekey(bytes.fromhex(wire_hex))


def visible_flags(hub: Hub) -> dict[bytes, set[tuple[str, str]]]:
    """What a reader sees now: stored token → {(agency code, flag code)} of current snapshots."""
    with hub.session() as session:
        rows = session.execute(
            select(snapshot_rows.c.token, Agency.code, Snapshot.flag_code)
            .join(Snapshot, Snapshot.id == snapshot_rows.c.snapshot_id)
            .join(Agency, Agency.id == Snapshot.agency_id)
            .where(Snapshot.state == SnapshotState.current, Snapshot.kind == "flag")
        ).all()
    seen: dict[bytes, set[tuple[str, str]]] = defaultdict(set)
    for token, agency, flag in rows:
        seen[bytes(token)].add((agency, flag))
    return dict(seen)


def verify_audit_log(hub: Hub, folder: Path, saved_checkpoint: str | None = None) -> Report:
    """Export the hub's audit log (as `matchhub audit export` does) and verify it offline,
    against a checkpoint saved earlier if one is given."""
    keys = audit.keys_from(
        load_key_material(hub.paths), hub.settings.hub_name, hub.settings.audit_checkpoint_every
    )
    with hub.session() as session:
        audit.export(session, keys, folder)
    verifier = (folder / "verifier.key").read_text().strip()
    return verify_export(folder, verifier, saved_checkpoint)


def metric_samples(client: httpx.Client, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric on ``/metrics`` (the client must be a monitor's), by their
    labels."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == name
    }


def lookup_view_state(client: httpx.Client) -> str:
    """The broker's lookup view state, as its monitor reads it."""
    samples = metric_samples(client, "matchhub_lookup_view_state")
    return next(dict(labels)["state"] for labels, value in samples.items() if value == 1)
