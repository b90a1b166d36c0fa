"""A matching-key rotation: a new version, providers and the ministry re-push under it, and
retiring the old version purges everything stored under it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from matchhub.agency.connector.client import make_client
from matchhub.agency.connector.push import PushClient, PushError, push
from matchhub.protocol.kinds import AgencyKind
from matchhub.uploads.models import roster_rows, snapshot_rows
from tests.conftest import RunningServer
from tests.e2e.helpers import national_ids, stored, tokens, visible_flags

LOAN = "bank.large_loan"


def _cli(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    hub = server.hub
    return subprocess.run(
        [sys.executable, "-m", "matchhub", "--home", str(hub.settings.home), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "MATCHHUB_DATABASE_URL": hub.settings.database_url or ""},
    )


def test_rotation_retires_and_purges_the_old_version(server: RunningServer) -> None:
    hub = server.hub
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    ids = national_ids(20, seed=41)
    old_key = hub.matching_key()
    old = tokens(old_key, ids)

    def push_all(version: str, toks: dict[str, str]) -> None:
        with make_client(server.url, bank) as client:
            push(
                client,
                kind="flags",
                key_version=version,
                flags=[LOAN],
                rows=[(toks[i], [LOAN]) for i in ids[:8]],
            )
        with make_client(server.url, molsa) as client:
            push(
                client,
                kind="roster",
                key_version=version,
                flags=[],
                rows=[(toks[i], []) for i in ids],
            )

    push_all(old_key.version, old)
    refused = _cli(server, "keys", "retire", old_key.version)
    assert refused.returncode != 0
    assert "only active matching-key version" in refused.stderr

    new_key = hub.matching_key()
    new = tokens(new_key, ids)
    push_all(new_key.version, new)
    retired = _cli(server, "keys", "retire", old_key.version)
    assert retired.returncode == 0, retired.stderr

    assert visible_flags(hub) == {stored(hub, new[i]): {("rafidain", LOAN)} for i in ids[:8]}
    with hub.session() as session:
        assert session.scalar(select(func.count()).select_from(snapshot_rows)) == 8
        assert session.scalar(select(func.count()).select_from(roster_rows)) == len(ids)
    with make_client(server.url, bank) as client, pytest.raises(PushError) as caught:
        PushClient(client).open("flags", old_key.version, [LOAN], 1)
    assert caught.value.code == "unknown_key_version"
    with make_client(server.url, molsa) as client:
        answer = client.post(
            "/v1/lookups",
            json={"purpose": "eligibility_review", "tokens": [new[ids[0]], old[ids[0]]]},
        ).json()
    assert [r["on_roster"] for r in answer["results"]] == [True, False]
    assert answer["results"][0]["flags"][0]["code"] == LOAN
