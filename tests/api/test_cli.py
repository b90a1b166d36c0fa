"""The operator CLI in process: ``matchhub`` with its arguments, its output and exit status, on a
hub's database (the CLI is the operator's interface as the HTTP API is the agencies'). What
needs the real entry point in a subprocess is in tests/e2e/test_cli.py."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509
from sqlalchemy import func, select, text

from matchhub.identity.models import Agency
from matchhub.keystore import pki
from matchhub.keystore.models import MatchingKeyVersion
from matchhub.protocol.tokens import MatchingKey
from tests.conftest import Hub
from tests.fixtures.cli import OperatorCli


def _agency_count(hub: Hub) -> int:
    with hub.session() as session:
        return int(session.scalar(select(func.count()).select_from(Agency)) or 0)


def _db_env(hub: Hub) -> dict[str, str]:
    return {"MATCHHUB_DATABASE_URL": hub.settings.database_url or ""}


def test_agency_lifecycle_and_bad_input(
    hub: Hub, tmp_path: Path, operator_cli: OperatorCli
) -> None:
    home, env = hub.settings.home, _db_env(hub)
    out = tmp_path / "out"
    added = operator_cli(
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

    unknown_kind = operator_cli(
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

    duplicate = operator_cli(
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

    listed = operator_cli(home, "agency", "list", env=env)
    assert "rafidain" in listed.stdout
    assert "active" in listed.stdout

    missing = operator_cli(home, "agency", "revoke", "nobody", env=env)
    assert missing.returncode != 0
    assert "no agency 'nobody'" in missing.stderr

    revoked = operator_cli(home, "agency", "revoke", "rafidain", env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in operator_cli(home, "agency", "list", env=env).stdout


def test_matching_key_is_handed_out_and_only_its_version_is_kept(
    hub: Hub, tmp_path: Path, operator_cli: OperatorCli
) -> None:
    home, env = hub.settings.home, _db_env(hub)
    key_file = tmp_path / "ceremony" / "matching-key.json"
    key_file.parent.mkdir()
    result = operator_cli(home, "keys", "matching-key", "--out", str(key_file), env=env)
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
    again = operator_cli(home, "keys", "matching-key", "--out", str(key_file), env=env)
    assert again.returncode != 0


def test_catalogue_commands(hub: Hub, operator_cli: OperatorCli) -> None:
    home, env = hub.settings.home, _db_env(hub)
    added = operator_cli(
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
    bad_kind = operator_cli(
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
    granted = operator_cli(
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
    again = operator_cli(
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
    rule = operator_cli(
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
    listing = operator_cli(home, "grants", "list", env=env).stdout
    assert "bank.mortgage_holder" in listing
    assert operator_cli(home, "flags", "retire", "bank.mortgage_holder", env=env).returncode == 0
    assert "bank.mortgage_holder" not in operator_cli(home, "flags", "list", env=env).stdout


def test_proxy_certificate_is_issued_and_audited(
    hub: Hub, tmp_path: Path, operator_cli: OperatorCli
) -> None:
    result = operator_cli(
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
