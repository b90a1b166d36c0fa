"""The desk's command line against a real broker: the roster registered, a collective match
whose list equals the synthetic ground truth per beneficiary and per household, lookups."""

from __future__ import annotations

import csv
from pathlib import Path

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
