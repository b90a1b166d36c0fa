"""Retention with receipts (issue 15): the scheduled pass deletes closed cases and job results
past their retention, on the app's clock, and each deletion leaves a receipt in the audit log
that `matchhub audit verify` checks offline; `matchhub retention run` does the same now."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from matchhub.audit.models import AuditEntry
from matchhub.keystore.material import load_key_material
from matchhub.protocol.verify import VerificationError, verify_export
from tests.api.test_audit_export import _cli, _rewrite
from tests.api.test_cases import Desk, _clock, desk
from tests.api.test_queries import PURPOSE, _error
from tests.conftest import Hub, InProcessApi
from tests.fixtures.cli import OperatorCli

__all__ = ["desk"]  # the fixture, used by name


def _poll(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the scheduled pass did not get there in time")
        time.sleep(0.05)


def _entries(hub: Hub, kind: str) -> list[dict[str, Any]]:
    with hub.session() as session:
        bodies = session.scalars(
            select(AuditEntry.body).where(AuditEntry.kind == kind).order_by(AuditEntry.seq)
        )
        return [json.loads(b) for b in bodies]


@pytest.mark.settings(janitor_interval_seconds=0.1)
def test_the_scheduled_pass_deletes_with_receipts_verified_offline(
    api: InProcessApi, desk: Desk, operator_cli: OperatorCli, tmp_path: Path
) -> None:
    hub = api.hub
    clock = _clock(api)
    closed = desk.case_in("closed")
    decided = desk.case_in("decided")  # not closed: kept whatever its age
    lapsing = desk.case_in("indication")
    clock.advance(timedelta(days=61))
    _poll(lambda: any(e.get("case") == lapsing for e in _entries(hub, "case")))
    (lapse,) = [e for e in _entries(hub, "case") if e["case"] == lapsing]
    assert (lapse["agency"], lapse["to"], lapse["actor"]) == ("molsa", "lapsed", "schedule")
    assert desk.get(lapsing)["state"] == "lapsed"
    assert desk.client.get(f"/v1/match-jobs/{desk.job}/results").status_code == 200
    clock.advance(timedelta(days=305))  # 366 days on: the closed case and the results go
    _poll(lambda: desk.client.get(f"/v1/cases/{closed}").status_code == 404)
    _poll(lambda: len(_entries(hub, "retention")) == 2)
    receipts = {r["record_class"]: r for r in _entries(hub, "retention")}
    assert receipts["case"]["ids"] == [closed]
    assert (receipts["case"]["count"], receipts["case"]["policy"]) == (
        1,
        "case_retention_days=365",
    )
    assert receipts["job_results"]["ids"] == [desk.job]
    assert receipts["job_results"]["policy"] == "result_retention_days=90"
    assert all(r["action"] == "delete" and r["when"] for r in receipts.values())
    assert desk.get(decided)["state"] == "decided"
    assert desk.get(lapsing)["state"] == "lapsed"  # lapsed 306 days ago: kept a while yet
    results = desk.client.get(f"/v1/match-jobs/{desk.job}/results")
    assert _error(results) == (410, "results_expired")
    assert desk.client.get(f"/v1/match-jobs/{desk.job}").json()["summary"]["roster_size"] == 45
    token = sorted(desk.results)[-1]
    assert _error(desk.open(token)) == (410, "results_expired")

    export = tmp_path / "export"
    assert _cli(operator_cli, hub, "audit", "export", "--out", str(export)).returncode == 0
    key = tmp_path / "verifier.key"
    key.write_text((export / "verifier.key").read_text())
    verified = _cli(
        operator_cli, hub, "audit", "verify", "--export", str(export), "--key", str(key)
    )
    assert verified.returncode == 0, verified.stderr
    assert "2 deletion receipts, each consistent: 1 case, 1 job_results" in verified.stdout

    # A receipt that claims more than it names does not verify, even re-signed with the
    # real key by whoever rewrote it.
    material = load_key_material(hub.paths)
    origin = f"{hub.settings.hub_name}.matchhub/audit"

    def inflate(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for line in lines:
            body = json.loads(line["body"])
            if body.get("kind") == "retention":
                body["count"] += 1
                line["body"] = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return lines

    _rewrite(export, inflate, material.audit_signing_key, origin)
    with pytest.raises(VerificationError, match="deletion receipt counts 2 records but names 1"):
        verify_export(export, key.read_text().strip())


TINY = 1e-5  # days: under a second


@pytest.mark.settings(result_retention_days=TINY, janitor_interval_seconds=3600)
def test_retention_run_by_the_operator(
    api: InProcessApi, desk: Desk, operator_cli: OperatorCli
) -> None:
    """Cases closed 400 days ago (the app's clock set back), deleted by `matchhub retention
    run` on the real time, with a receipt; one closed yesterday stays. The match job's results
    expire in under a second: the same command deletes them, with their own receipt (the app's
    own scheduled pass is held off, so only the command deletes)."""
    clock = _clock(api)
    clock.advance(timedelta(days=-400))
    old = [desk.case_in("closed") for _ in range(2)]
    clock.advance(timedelta(days=399))
    recent = desk.case_in("closed")
    env = {
        "MATCHHUB_DATABASE_URL": api.hub.settings.database_url or "",
        "MATCHHUB_RESULT_RETENTION_DAYS": str(TINY),
    }
    outputs: list[str] = []

    def run() -> bool:
        ran = operator_cli(api.hub.settings.home, "retention", "run", env=env)
        assert ran.returncode == 0, ran.stderr
        outputs.append(ran.stdout)
        return "job_results" in ran.stdout

    _poll(run)  # the results expire within a second of the job
    said = "".join(outputs)
    assert "deleted 2 case (case_retention_days=365)" in said
    assert f"deleted 1 job_results (result_retention_days={TINY:g})" in said
    assert [desk.client.get(f"/v1/cases/{c}").status_code for c in [*old, recent]] == [
        404,
        404,
        200,
    ]
    receipts = {r["record_class"]: r for r in _entries(api.hub, "retention")}
    assert sorted(receipts["case"]["ids"]) == sorted(old)
    assert receipts["job_results"]["ids"] == [desk.job]
    assert _error(desk.client.get(f"/v1/match-jobs/{desk.job}/results")) == (
        410,
        "results_expired",
    )
    again = _cli(operator_cli, api.hub, "retention", "run")
    assert "nothing past its retention" in again.stdout


def test_the_operator_sets_a_purposes_notice_period(
    api: InProcessApi, desk: Desk, operator_cli: OperatorCli
) -> None:
    hub = api.hub
    default = desk.case_in("notified")
    set_ = _cli(operator_cli, hub, "purposes", "notice", PURPOSE, "--days", "14")
    assert set_.returncode == 0, set_.stderr
    shorter = desk.case_in("notified")
    assert [desk.get(c)["notice_days"] for c in (default, shorter)] == [30, 14]
    assert _cli(operator_cli, hub, "purposes", "notice", "no_such", "--days", "14").returncode == 1
    assert _cli(operator_cli, hub, "purposes", "notice", PURPOSE, "--days", "0").returncode == 1
    (changed,) = [e for e in _entries(hub, "admin") if e["action"] == "purposes.notice"]
    assert (changed["purpose"], changed["days"]) == (PURPOSE, 14)
