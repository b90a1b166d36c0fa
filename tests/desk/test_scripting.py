"""The desk's command line against a real broker: the roster registered, a collective match
whose list equals the synthetic ground truth per beneficiary and per household, lookups."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

from sqlalchemy import text

from tests.desk.conftest import DeskWorld


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file))


def test_match_from_the_command_line_equals_the_ground_truth(
    world: DeskWorld, tmp_path: Path
) -> None:
    assert world.cli("roster", "--as", "ali.hassan") == 0
    out, households = tmp_path / "list.csv", tmp_path / "households.csv"
    assert (
        world.cli(
            "match",
            "--purpose",
            "eligibility_review",
            "--out",
            str(out),
            "--households",
            str(households),
            "--as",
            "ali.hassan",
        )
        == 0
    )
    truth, household_of = world.truth()
    listed = {row["beneficiary_id"]: set(row["flags"].split(";")) for row in _rows(out)}
    assert listed == {b: f for b, f in truth.items() if f}
    expected_households: dict[str, set[str]] = {}
    for beneficiary, flags in truth.items():
        if flags:
            expected_households.setdefault(household_of[beneficiary], set()).update(flags)
    got = {row["household_id"]: set(row["flags"].split(";")) for row in _rows(households)}
    assert got == expected_households


def test_a_desk_restarted_mid_match_picks_the_job_up_again(world: DeskWorld) -> None:
    """The desk stopped after the broker accepted the job: on its next start it follows the
    same job (no second job at the broker) and makes the lists; a roster registration cut
    short is failed, and the registered roster stays current."""
    from matchhub.agency.desk.models import Match, Roster  # noqa: PLC0415
    from tests.desk.conftest import serving  # noqa: PLC0415

    assert world.cli("roster", "--as", "ali.hassan") == 0
    desk = world.desk()
    analyst = desk.staff("ali.hassan")
    with desk.broker(analyst) as broker:
        job = broker.open_job("eligibility_review", None)
    with desk.db.transaction() as session:
        session.add(Match(purpose="eligibility_review", started_by=analyst.name, job_id=job["id"]))
        session.add(Roster(started_by=analyst.name, state="running", stage="sending", counts={}))
    desk.close()

    desk = world.desk()
    desk.poll_seconds = 0.05
    with serving(desk):
        deadline = time.monotonic() + 60
        while (found := desk.match(1)) is not None and found.state == "running":
            assert time.monotonic() < deadline, "the match was not picked up again"
            time.sleep(0.05)
    assert found is not None
    assert found.state == "ready", found.error
    assert found.job_id == job["id"]
    truth, _ = world.truth()
    assert found.summary is not None
    assert found.summary["flagged_beneficiaries"] == sum(1 for f in truth.values() if f)
    rosters = {r.state for r in desk.rosters()}
    assert rosters == {"current", "failed"}
    with world.server.hub.session() as session:
        jobs = session.execute(text("SELECT count(*) FROM match_jobs")).scalar_one()
    assert jobs == 1
    desk.close()


def test_serve_over_tls_marks_the_cookies_secure(world: DeskWorld, tmp_path: Path) -> None:
    """`matchhub-desk serve --certificate --key`, the real command in its own process: HTTPS,
    cookies Secure with the __Host- prefix, HSTS; signing in works over it."""
    import re  # noqa: PLC0415
    import ssl  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    from matchhub.cli.processes import free_port  # noqa: PLC0415
    from matchhub.keystore import pki  # noqa: PLC0415
    from tests.desk.conftest import PASSWORD  # noqa: PLC0415

    ca = pki.create_ca("desk-test")
    server = pki.issue_server(ca, "desk-test", ["127.0.0.1"])
    (tmp_path / "ca.pem").write_bytes(pki.cert_pem(ca.certificate))
    (tmp_path / "desk.pem").write_bytes(pki.cert_pem(server.certificate))
    pki.write_secret(tmp_path / "desk-key.pem", pki.key_pem(server.key))
    port = free_port()
    command = [sys.executable, "-m", "matchhub.agency.desk", "serve", "--home", str(world.home)]
    command += ["--port", str(port), "--certificate", str(tmp_path / "desk.pem")]
    command += ["--key", str(tmp_path / "desk-key.pem")]
    # A desk never serves with the suite's cheap password hashing (tests/conftest.py).
    env = {k: v for k, v in os.environ.items() if k != "MATCHHUB_DESK_PASSWORD_HASHING"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    trust = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    try:
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=trust) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    login = client.get("/login")
                    break
                except httpx.TransportError:
                    assert process.poll() is None, process.stdout.read() if process.stdout else ""
                    assert time.monotonic() < deadline, "the desk did not start"
                    time.sleep(0.1)
            assert login.status_code == 200
            assert login.headers["strict-transport-security"].startswith("max-age=")
            assert "secure" in login.headers["set-cookie"].lower()
            assert login.headers["set-cookie"].startswith("__Host-desk-")
            token = re.search(r'name="csrf" value="([^"]+)"', login.text)
            assert token is not None
            signed = client.post(
                "/login",
                data={"name": "sara.jabbar", "password": PASSWORD, "csrf": token.group(1)},
            )
            assert signed.status_code == 303
            cookie = signed.headers["set-cookie"]
            assert cookie.startswith("__Host-desk-")
            assert "secure" in cookie.lower()
            assert "httponly" in cookie.lower()
            assert client.get("/staff").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def test_lookup_and_staff_commands(world: DeskWorld, capsys) -> None:  # type: ignore[no-untyped-def]
    """`lookup` as a named caseworker (Arabic-Indic digits accepted; a bad ID sends nothing),
    `user list` and `user disable` (a disabled member of staff can no longer act)."""
    with (world.data / "truth.csv").open(encoding="utf-8") as file:
        flagged = next(
            row["national_id"]
            for row in csv.DictReader(file)
            if row["on_roster"] == "1" and row["flags"]
        )
    assert world.cli("roster", "--as", "ali.hassan") == 0
    capsys.readouterr()
    typed = flagged.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert world.cli("lookup", "--purpose", "eligibility_review", typed, "--as", "huda.kareem") == 0
    said = capsys.readouterr().out
    assert "indications to verify" in said
    assert flagged not in said  # it answers with the number as typed
    # An analyst may not look up; a malformed ID is refused before anything is sent.
    assert (
        world.cli("lookup", "--purpose", "eligibility_review", flagged, "--as", "ali.hassan") == 1
    )
    with world.server.hub.session() as session:
        before = session.execute(text("SELECT size FROM audit_state")).scalar_one()
    assert (
        world.cli("lookup", "--purpose", "eligibility_review", "12-34", "--as", "huda.kareem") == 1
    )
    assert "nothing was sent" in capsys.readouterr().err
    with world.server.hub.session() as session:
        assert session.execute(text("SELECT size FROM audit_state")).scalar_one() == before
    assert world.cli("user", "list") == 0
    listing = capsys.readouterr().out
    assert "huda.kareem" in listing
    assert "du-" not in listing  # pseudonyms are the broker's business, never shown
    assert world.cli("user", "disable", "huda.kareem") == 0
    assert world.cli("lookup", "--purpose", "eligibility_review", typed, "--as", "huda.kareem") == 1
    assert "no active member of staff" in capsys.readouterr().err
