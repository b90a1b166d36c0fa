from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from matchhub.kit.settings import Environment, Settings


def test_database_defaults_to_sqlite_in_the_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path.resolve() / 'matchhub.db'}"


def test_environment_variables_use_the_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MATCHHUB_HOME", str(tmp_path))
    monkeypatch.setenv("MATCHHUB_PORT", "9443")
    settings = Settings()
    assert (settings.home, settings.port) == (tmp_path, 9443)


def test_production_refuses_a_demo_state_folder(tmp_path: Path) -> None:
    (tmp_path / "DEMO").write_text("demo")
    Settings(home=tmp_path)  # fine in development
    with pytest.raises(ValidationError, match="demo keys"):
        Settings(home=tmp_path, environment=Environment.production)


def test_proxy_mode_needs_a_trusted_proxy_certificate(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="trusted_proxy_fingerprints"):
        Settings(home=tmp_path, client_cert_source="proxy")


def test_production_refuses_test_only_switches(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="audit log cannot be switched off"):
        Settings(home=tmp_path, environment=Environment.production, audit_enabled=False)
    with pytest.raises(ValidationError, match="for tests"):
        Settings(home=tmp_path, environment=Environment.production, job_fault_delay_seconds=1)
