"""A logged exception names the code, never the data in its frames (kit/logs.py)."""

from __future__ import annotations

import pytest
import structlog

from matchhub.kit import logs

WIRE_TOKEN = "7d1b" * 16  # what a chunk body holds


def _ingest(body: str) -> None:
    chunk = body.encode()
    raise ValueError(f"line 1 is not NDJSON ({len(chunk)} bytes)")


def test_exception_logs_carry_no_local_variables(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure()
    try:
        try:
            _ingest('{"token": "' + WIRE_TOKEN + '"}')
        except ValueError:
            structlog.get_logger("matchhub.test").exception("chunk refused")
        out = capsys.readouterr()
        printed = out.out + out.err
        assert "chunk refused" in printed
        assert "line 1 is not NDJSON" in printed  # the traceback is there
        assert "_ingest" in printed
        assert WIRE_TOKEN not in printed
        assert WIRE_TOKEN[:16] not in printed  # not even cut short
    finally:
        structlog.reset_defaults()


def test_a_log_that_is_not_a_terminal_has_no_colour_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """broker.log and a service's journal are files: no ANSI escape codes in them."""
    logs.configure()
    try:
        structlog.get_logger("matchhub.test").warning("lookup view loaded", rows=3)
        printed = capsys.readouterr().out
        assert "lookup view loaded" in printed
        assert "\x1b[" not in printed
    finally:
        structlog.reset_defaults()
