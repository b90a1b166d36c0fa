"""The operator CLI as operators run it, ``python -m matchhub`` in a subprocess, for what needs the
real entry point: the files `init` writes and `serve` refusing to start (the commands' behaviour
in process: tests/api/test_cli.py)."""

from __future__ import annotations

import os
import shutil
import socket
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
    assert "serving" not in result.stdout  # it says so only once it does


def test_serve_says_serving_only_once_the_port_is_its_own(tmp_path: Path) -> None:
    home = tmp_path / "state"
    bootstrap.initialise(Settings(home=home))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run(home, "serve", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 1
    assert "serving" not in result.stdout
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_matching_key_out_makes_its_folder(tmp_path: Path) -> None:
    home = tmp_path / "state"
    bootstrap.initialise(Settings(home=home))
    target = tmp_path / "ceremony" / "2026-12" / "matching-key.json"
    result = run(home, "keys", "matching-key", "--out", str(target))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_the_demo_honours_home_and_leaves_true_hints_and_plain_logs(tmp_path: Path) -> None:
    """`matchhub --home X demo` runs in X; the closing hints name commands a new shell finds;
    the broker's log file holds no colour codes; --people is held to its range."""
    home = tmp_path / "elsewhere"
    work = tmp_path / "work"
    work.mkdir()
    small = subprocess.run(
        [sys.executable, "-m", "matchhub", "demo", "--people", "10"],
        capture_output=True, text=True, check=False, cwd=work, timeout=60,
    )  # fmt: skip
    assert small.returncode == 2
    assert "--people" in small.stderr
    result = subprocess.run(
        [sys.executable, "-m", "matchhub", "--home", str(home), "demo", "--people", "800"],
        capture_output=True, text=True, check=False, cwd=work, timeout=600,
        # A new shell's PATH, no virtualenv on it; lines wide enough not to wrap.
        env={**os.environ, "PATH": "/usr/bin:/bin", "COLUMNS": "500"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (home / "broker.log").exists()
    assert not (work / "var").exists()
    assert "\x1b[" not in (home / "broker.log").read_text()
    closing = result.stdout.split("on the demo's state (two terminals):")[-1]
    hints = [line.split()[0] for line in closing.splitlines() if " serve --" in line]
    assert len(hints) == 2
    for hint in hints:
        found = shutil.which(hint, path="/usr/bin:/bin") or (work / hint).exists()
        assert found or Path(hint).is_file(), hint
