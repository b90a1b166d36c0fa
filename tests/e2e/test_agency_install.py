"""An agency installs the connector without the broker: a fresh virtual environment, the plain
``pip install``, and none of the broker's server dependencies in it."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from matchhub.cli import BROKER_MODULES

REPO = Path(__file__).resolve().parents[2]
# Distributions (as pip names them) that only the broker needs.
SERVER_DISTRIBUTIONS = {
    "alembic",
    "fastapi",
    "psycopg",
    "psycopg-binary",
    "sqlalchemy",
    "starlette",
    "uvicorn",
}
# ... and those only the ministry's desk needs (the `desk` extra).
DESK_DISTRIBUTIONS = {"argon2-cffi", "babel", "jinja2", "python-multipart", "xlsxwriter"}


@pytest.mark.slow
def test_the_plain_install_is_the_agency_side(tmp_path: Path) -> None:
    env = tmp_path / "agency-venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(REPO)],
        check=True,
        timeout=600,
    )
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    installed = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert "matchhub" in installed
    assert installed & SERVER_DISTRIBUTIONS == set()
    assert installed & DESK_DISTRIBUTIONS == set()
    for module in sorted(BROKER_MODULES):
        found = subprocess.run(
            [python, "-c", f"import importlib.util as u; print(u.find_spec({module!r}) is None)"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert found == "True", f"{module} is importable in the agency's environment"

    connect = subprocess.run(
        [env / "bin" / "matchhub-connect", "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert connect.returncode == 0, connect.stderr
    assert "push" in connect.stdout

    # The desk is an extra of its own: its command says in one line what to install.
    desk = subprocess.run(
        [env / "bin" / "matchhub-desk", "--help"], check=False, capture_output=True, text=True
    )
    assert desk.returncode == 2
    assert "pip install 'matchhub[desk]'" in desk.stderr
    assert "Traceback" not in desk.stderr

    # The broker's command says in one line what to install, without a traceback.
    broker = subprocess.run(
        [env / "bin" / "matchhub", "--help"], check=False, capture_output=True, text=True
    )
    assert broker.returncode == 2
    assert "pip install 'matchhub[broker]'" in broker.stderr
    assert "Traceback" not in broker.stderr

    # The auditor's offline check runs here too: an export made on the broker host verifies,
    # and one changed since does not.
    home, export = tmp_path / "hub", tmp_path / "export"
    for args in (["init"], ["audit", "export", "--out", str(export)]):
        made = subprocess.run(
            [Path(sys.executable).parent / "matchhub", "--home", str(home), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
    verify = [env / "bin" / "matchhub", "audit", "verify", "--export", str(export)]
    verify += ["--key", str(export / "verifier.key")]
    verified = subprocess.run(verify, check=False, capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stderr
    assert "verified 1 entries" in verified.stdout
    entries = export / "entries.jsonl"
    entries.write_text(entries.read_text().replace("hub.init", "hub.tnit"))
    refused = subprocess.run(verify, check=False, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "does NOT verify" in refused.stderr
    assert "Traceback" not in refused.stderr
