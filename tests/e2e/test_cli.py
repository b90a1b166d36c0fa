"""The operator CLI, run as operators run it: ``python -m matchhub`` in a subprocess."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import func, select, text

from matchhub.identity.models import Agency
from matchhub.keystore import pki
from matchhub.keystore.models import MatchingKeyVersion
from matchhub.protocol.tokens import MatchingKey
from tests.conftest import Hub


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


def _agency_count(hub: Hub) -> int:
    with hub.session() as session:
        return int(session.scalar(select(func.count()).select_from(Agency)) or 0)


def _db_env(hub: Hub) -> dict[str, str]:
    return {"MATCHHUB_DATABASE_URL": hub.settings.database_url or ""}


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
    before = {p: p.read_bytes() for p in paths}
    again = run(home, "init")
    assert again.returncode != 0
    assert "refusing to overwrite" in again.stderr
    assert {p: p.read_bytes() for p in paths} == before


def test_agency_lifecycle_and_bad_input(hub: Hub, tmp_path: Path) -> None:
    home, env = hub.settings.home, _db_env(hub)
    out = tmp_path / "out"
    added = run(
        home,
        "agency",
        "add",
        "rafidain",
        "--kind",
        "bank",
        "--name",
        "Rafidain Bank",
        "--out",
        str(out),
        env=env,
    )
    assert added.returncode == 0, added.stderr
    assert stat.S_IMODE((out / "rafidain-key.pem").stat().st_mode) == 0o600
    assert (out / "rafidain.pem").exists()
    assert (out / "ca.pem").exists()

    unknown_kind = run(
        home,
        "agency",
        "add",
        "x1",
        "--kind",
        "casino",
        "--name",
        "X",
        "--out",
        str(tmp_path / "x1"),
        env=env,
    )
    assert unknown_kind.returncode != 0
    assert "unknown agency kind 'casino'" in unknown_kind.stderr
    assert not (tmp_path / "x1").exists()

    duplicate = run(
        home,
        "agency",
        "add",
        "rafidain",
        "--kind",
        "bank",
        "--name",
        "Again",
        "--out",
        str(tmp_path / "dup"),
        env=env,
    )
    assert duplicate.returncode != 0
    assert "already registered" in duplicate.stderr
    assert not (tmp_path / "dup" / "rafidain.pem").exists()
    assert _agency_count(hub) == 1

    listed = run(home, "agency", "list", env=env)
    assert "rafidain" in listed.stdout
    assert "active" in listed.stdout

    missing = run(home, "agency", "revoke", "nobody", env=env)
    assert missing.returncode != 0
    assert "no agency 'nobody'" in missing.stderr

    revoked = run(home, "agency", "revoke", "rafidain", env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in run(home, "agency", "list", env=env).stdout


def test_matching_key_is_handed_out_and_only_its_version_is_kept(hub: Hub, tmp_path: Path) -> None:
    home, env = hub.settings.home, _db_env(hub)
    key_file = tmp_path / "ceremony" / "matching-key.json"
    key_file.parent.mkdir()
    result = run(home, "keys", "matching-key", "--out", str(key_file), env=env)
    assert result.returncode == 0, result.stderr
    key = MatchingKey.from_file(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with hub.session() as session:
        versions = session.scalars(select(MatchingKeyVersion.version)).all()
    assert versions == [key.version]
    # The broker's state folder (and its SQLite file, if any) never holds the key itself.
    for path in home.rglob("*"):
        if path.is_file():
            assert key.get_secret_value() not in path.read_bytes(), path
    again = run(home, "keys", "matching-key", "--out", str(key_file), env=env)
    assert again.returncode != 0


@pytest.mark.parametrize("broken", ["missing", "unreadable"])
def test_serve_refuses_a_missing_or_unreadable_key(tmp_path: Path, broken: str) -> None:
    home = tmp_path / "state"
    assert run(home, "init").returncode == 0
    key = home / "keys" / "broker.key"
    if broken == "missing":
        key.unlink()
    else:
        key.write_text("not a key")
    result = run(home, "serve", "--port", "1")
    assert result.returncode != 0
    assert "broker.key" in result.stderr


def test_catalogue_commands(hub: Hub) -> None:
    home, env = hub.settings.home, _db_env(hub)
    added = run(
        home,
        "flags",
        "add",
        "bank.mortgage_holder",
        "--kind",
        "bank",
        "--label-en",
        "Holds a mortgage",
        "--label-ar",
        "لديه رهن عقاري",
        "--rule",
        "Any outstanding mortgage",
        "--param",
        "threshold=1",
        env=env,
    )
    assert added.returncode == 0, added.stderr
    bad_kind = run(
        home,
        "flags",
        "add",
        "welfare.thing",
        "--kind",
        "welfare",
        "--label-en",
        "x",
        "--label-ar",
        "x",
        "--rule",
        "x",
        env=env,
    )
    assert bad_kind.returncode != 0
    assert "do not assert flags" in bad_kind.stderr
    granted = run(
        home,
        "grants",
        "add",
        "--to",
        "kind:welfare",
        "--flag",
        "bank.mortgage_holder",
        "--purpose",
        "eligibility_review",
        env=env,
    )
    assert granted.returncode == 0, granted.stderr
    again = run(
        home,
        "grants",
        "add",
        "--to",
        "kind:welfare",
        "--flag",
        "bank.mortgage_holder",
        "--purpose",
        "eligibility_review",
        env=env,
    )
    assert again.returncode != 0
    assert "exists" in again.stderr
    rule = run(
        home,
        "flags",
        "set-rule",
        "bank.mortgage_holder",
        "--rule",
        "At least two",
        "--param",
        "threshold=2",
        env=env,
    )
    assert "version 2" in rule.stdout
    listing = run(home, "grants", "list", env=env).stdout
    assert "bank.mortgage_holder" in listing
    assert run(home, "flags", "retire", "bank.mortgage_holder", env=env).returncode == 0
    assert "bank.mortgage_holder" not in run(home, "flags", "list", env=env).stdout


def test_proxy_certificate_is_issued_and_audited(hub: Hub, tmp_path: Path) -> None:
    result = run(
        hub.settings.home, "proxy-cert", "edge-1", "--out", str(tmp_path / "edge"), env=_db_env(hub)
    )
    assert result.returncode == 0, result.stderr
    cert = (tmp_path / "edge" / "edge-1.pem").read_bytes()
    certificate = x509.load_pem_x509_certificate(cert)
    assert pki.fingerprint(certificate) in result.stdout.replace("\n", "")
    assert pki.agency_uri_of(certificate) == pki.proxy_uri("matchhub", "edge-1")
    with hub.session() as session:
        bodies = session.execute(text("SELECT body FROM audit_entries")).scalars().all()
    assert any('"action":"proxy.issue"' in b for b in bodies)
