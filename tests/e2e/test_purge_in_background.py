"""A commit's purge waits for old transactions in the purger's thread (web/background.py),
never in the request (issue 13 item 7): it used to sleep up to 30 s inside the commit's
admission slot, so with one slot the broker answered nothing meanwhile."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, select, text

from matchhub.protocol.kinds import AgencyKind
from matchhub.uploads.models import Snapshot, SnapshotState
from tests.api.test_uploads import _push_loans
from tests.conftest import RunningServer
from tests.e2e.helpers import national_ids, tokens


@pytest.mark.settings(request_concurrency=1)
def test_a_waiting_purge_holds_no_request_slot(server: RunningServer) -> None:
    hub = server.hub
    if not hub.settings.database_url:
        pytest.skip("PostgreSQL only: a SQLite purge never waits for a reader")
    key = hub.matching_key()
    bank = hub.add_agency("rafidain", AgencyKind.bank)
    ids = national_ids(10, seed=8)
    toks = tokens(key, ids)
    _push_loans(server, bank, key.version, toks, ids[:6], chunk_rows=4)
    reader = create_engine(str(hub.settings.database_url))
    try:
        with reader.connect() as old:
            old.execute(text("SELECT 1"))  # a transaction from before the replacement, open
            _push_loans(server, bank, key.version, toks, ids[4:], chunk_rows=4)
            with server.client("rafidain") as client:
                # The purge waits for `old`; the one slot is free all the same.
                answer = client.get("/v1/whoami", timeout=10)
            assert answer.status_code == 200
            with hub.session() as session:
                states = session.scalars(select(Snapshot.state).order_by(Snapshot.id)).all()
            assert states == [SnapshotState.superseded, SnapshotState.current]
            old.rollback()
        deadline = time.monotonic() + 30  # then the purger finishes on its own
        while states[0] != SnapshotState.purged:
            assert time.monotonic() < deadline, states
            time.sleep(0.1)
            with hub.session() as session:
                states = session.scalars(select(Snapshot.state).order_by(Snapshot.id)).all()
    finally:
        reader.dispose()
