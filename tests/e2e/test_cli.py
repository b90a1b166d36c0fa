"""The operator CLI as operators run it, ``python -m matchhub`` in a subprocess, for what needs the
real entry point: the files `init` writes and `serve` refusing to start (the commands' behaviour
in process: tests/api/test_cli.py)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from matchhub.cli import bootstrap
from matchhub.kit.db import make_engine
from matchhub.kit.settings import Settings


def run(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matchhub", "--home", str(home), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_init_writes_secrets_0600_and_refuses_to_overwrite(tmp_path: Path) -> None:
    home = tmp_path / "state"
    first = run(home, "init")
    assert first.returncode == 0, first.stderr
    paths = [
        home / "pki" / "ca-key.pem",
        home / "pki" / "server-key.pem",
        home / "keys" / "broker.key",
        home / "keys" / "audit-signing-key.pem",
        home / "keys" / "audit-subject.key",
    ]
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # The SQLite database too, and the -wal and -shm files a running broker keeps beside it.
    database = home / "matchhub.db"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    engine = make_engine(Settings(home=home).sqlalchemy_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE scratch (x INTEGER)")
            for suffix in ("-wal", "-shm"):
                side = database.with_name(database.name + suffix)
                assert stat.S_IMODE(side.stat().st_mode) == 0o600, side
            connection.exec_driver_sql("DROP TABLE scratch")
    finally:
        engine.dispose()
    before = {p: p.read_bytes() for p in paths}
    again = run(home, "init")
    assert again.returncode != 0
    assert "refusing to overwrite" in again.stderr
    assert {p: p.read_bytes() for p in paths} == before


@pytest.mark.parametrize("broken", ["missing", "unreadable"])
def test_serve_refuses_a_missing_or_unreadable_key(tmp_path: Path, broken: str) -> None:
    home = tmp_path / "state"
    bootstrap.initialise(Settings(home=home))  # `init` itself is the test above
    key = home / "keys" / "broker.key"
    if broken == "missing":
        key.unlink()
    else:
        key.write_text("not a key")
    result = run(home, "serve", "--port", "1")
    assert result.returncode != 0
    assert "broker.key" in result.stderr
