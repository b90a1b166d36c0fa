"""What deploy/ ships is checked by the tools that will read it: systemd-analyze for the service
units, promtool for the alert rules (whose matchhub_* names must be ones the broker exports),
and the settings class for the production settings example."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from matchhub.agency.connector.client import make_client
from matchhub.kit.settings import Settings
from matchhub.protocol.kinds import AgencyKind
from tests.conftest import RunningServer

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ("matchhub-serve@.service", "matchhub-worker@.service", "matchhub.target")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is needed for this test: scripts/ensure-services installs it")
    return found


def test_the_service_units_verify(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze")
    here = Path(sys.executable).parent / "matchhub"  # where the units' /opt/matchhub/.venv is
    for name in UNITS:
        text = (DEPLOY / name).read_text()
        assert "/opt/matchhub/.venv/bin/matchhub" in text or name.endswith(".target")
        (tmp_path / name).write_text(text.replace("/opt/matchhub/.venv/bin/matchhub", str(here)))
    # Templates are verified as the instances the runbook enables.
    shutil.copy(tmp_path / UNITS[0], tmp_path / "matchhub-serve@8501.service")
    shutil.copy(tmp_path / UNITS[1], tmp_path / "matchhub-worker@1.service")
    names = ["matchhub-serve@8501.service", "matchhub-worker@1.service", "matchhub.target"]
    done = subprocess.run(
        [analyze, "verify", *(str(tmp_path / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr.strip()) == (0, ""), done.stderr
    serve = (DEPLOY / UNITS[0]).read_text()
    # The production default: HTTP processes leave the background work to the workers.
    assert "MATCHHUB_SERVE_BACKGROUND=false" in serve
    assert "MATCHHUB_SERVE_BACKGROUND" not in (DEPLOY / UNITS[1]).read_text()


def test_the_alert_rules_check_and_name_what_the_broker_exports(server: RunningServer) -> None:
    promtool = _tool("promtool")
    rules = DEPLOY / "alerts.yml"
    done = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    monitor = server.hub.add_agency("prometheus", AgencyKind.monitor)
    with make_client(server.url, monitor) as client:
        client.get("/v1/whoami")
        exposition = client.get("/metrics").text
    exported = {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in exposition.splitlines()
        if line and not line.startswith("#")
    }
    named = set(re.findall(r"\bmatchhub_[a-z_]+", rules.read_text()))
    assert named, "the rules name no matchhub metric"
    assert named <= exported, (
        f"alert rules name metrics the broker does not export: {named - exported}"
    )


def test_the_production_settings_example_is_settings_and_holds_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (DEPLOY / "matchhub.env.example").read_text()
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    fields = {f"MATCHHUB_{name.upper()}" for name in Settings.model_fields}
    assert set(values) <= fields, f"not settings: {set(values) - fields}"
    url = make_url(values["MATCHHUB_DATABASE_URL"])
    assert url.password is None  # the password lives in libpq's passfile, outside
    assert url.query["target_session_attrs"] == "read-write"
    assert len(url.query["host"]) == 2  # both servers of the pair
    assert "password=" not in text.lower()
    assert "-----BEGIN" not in text
    for name, value in values.items():  # read as systemd hands it over: the environment
        monkeypatch.setenv(name, value)
    settings = Settings(home=tmp_path)
    assert settings.client_cert_source == "proxy"
    assert settings.database_url == values["MATCHHUB_DATABASE_URL"]
