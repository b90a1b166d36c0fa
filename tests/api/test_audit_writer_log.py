"""When an audit entry cannot be written (on PostgreSQL, a NUL in a column), the writer logs the
exception; the database error must not carry the statement's bound values into the log (the
batch's entries: agencies, end users, purposes, bodies). Found in review."""

from __future__ import annotations

import asyncio

import pytest

from matchhub.audit.service import PendingEntry
from matchhub.kit import logs
from matchhub.web.writer import AuditWriter
from tests.conftest import InProcessApi

MARK = "f00dfeed" * 8  # stands for a subject's digest, a token, anything an entry holds


def test_an_unwritable_entry_leaves_no_entry_value_in_the_log(
    api: InProcessApi, capsys: pytest.CaptureFixture[str]
) -> None:
    if not api.hub.settings.database_url:
        pytest.skip("SQLite holds a NUL: nothing fails")
    logs.configure()
    writer = AuditWriter(api.app.state.sessionmaker, api.app.state.audit_keys)
    pending = [
        PendingEntry("request", {"n": 0, "other_callers_value": MARK}),
        PendingEntry("request", {"n": 1, "own_value": MARK}, purpose="\x00"),
    ]

    async def one_batch() -> list[int | BaseException]:
        waits = [asyncio.ensure_future(writer.record(entry)) for entry in pending]
        await asyncio.sleep(0)
        writer.start()
        return await asyncio.gather(*waits, return_exceptions=True)

    try:
        outcomes = api.portal.call(one_batch)
    finally:
        writer.stop()
    assert isinstance(outcomes[0], int)
    assert isinstance(outcomes[1], BaseException)
    out = capsys.readouterr()
    assert "audit entry could not be written" in out.out + out.err
    assert "[parameters:" not in out.out + out.err
    assert MARK not in out.out + out.err
