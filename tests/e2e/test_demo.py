"""`matchhub demo`, the README's first command, on a small population: its flags must equal the
synthetic ground truth exactly, and its audit log must verify offline."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from matchhub.cli.demo import run_demo
from matchhub.kit.errors import OperatorError


def test_the_demo_equals_the_ground_truth(tmp_path: Path) -> None:
    output = io.StringIO()
    home = tmp_path / "demo"
    result = run_demo(home, Console(file=output, width=200), people=800, seed=11)
    text = output.getvalue()
    assert result.matches_truth
    assert result.flagged == result.expected
    assert result.expected, "a population this size has flagged beneficiaries"
    truth = json.loads((home / "data" / "truth.json").read_text())
    assert result.summary["roster_size"] == truth["roster"]
    assert result.summary["flagged_beneficiaries"] == truth["roster_flagged"]
    assert {code: c["beneficiaries"] for code, c in result.summary["per_flag"].items()} == {
        code: counts["roster"] for code, counts in truth["flags"].items() if counts["roster"]
    }
    assert "equal to the synthetic ground truth, per beneficiary: yes" in text
    # The ministry's side ran at its desk, as named staff, and left it ready to serve.
    assert (home / "desk" / "lists" / "demo" / "beneficiaries.csv").exists()
    assert (home / "desk" / "demo-staff.txt").stat().st_mode & 0o077 == 0
    assert "matchhub-desk serve --home" in text
    assert "verified it offline against the checkpoint it saved" in text
    assert "broker stopped" in text
    # The log recorded every chunk of every push, and still verifies (the chunk number is a
    # field of its own, never the entry's sequence number).
    entries = (home / "auditor" / "export" / "entries.jsonl").read_text().splitlines()
    bodies = [json.loads(json.loads(line)["body"]) for line in entries]
    assert [b["seq"] for b in bodies] == list(range(len(bodies)))
    assert any(b.get("route") == "/v1/uploads/{upload_id}/chunks/{seq}" for b in bodies)


def test_the_demo_never_deletes_a_folder_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "file").write_text("keep me")
    with pytest.raises(OperatorError, match="not made by the demo"):
        run_demo(precious, Console(file=io.StringIO()), people=10)
    assert (precious / "file").read_text() == "keep me"
