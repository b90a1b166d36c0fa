"""The synthetic population: deterministic under a seed, plausible, and its ground truth is what
its own extracts imply when read by the connectors' definitions."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import random
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from matchhub.agency.connector.definition import default_rules, load, parse_number
from matchhub.agency.connector.extract import evaluate
from matchhub.protocol.tokens import InvalidIdentifier, normalise
from matchhub.synth.cli import synth_app
from matchhub.synth.extracts import FLAG_CODES, generate
from matchhub.synth.population import IdPermutation, Population
from tests.connect.conftest import CONNECTORS, KINDS, truth

ARABIC_DIGITS = frozenset("٠١٢٣٤٥٦٧٨٩")


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    first = generate(600, 42, tmp_path / "a")
    generate(600, 42, tmp_path / "b")
    generate(600, 43, tmp_path / "c")
    a, b, c = (_digests(tmp_path / name) for name in "abc")
    assert a == b
    assert set(a) == {
        "population.csv",
        "truth.csv",
        "truth.json",
        *(f"{kind}.csv" for kind in KINDS),
    }
    assert all(a[name] != c[name] for name in ("population.csv", "welfare.csv", "bank.csv"))
    assert first == json.loads((tmp_path / "a" / "truth.json").read_text())


def test_the_truth_is_what_the_extracts_imply(population: Path) -> None:
    document = json.loads((population / "truth.json").read_text())
    flagged, roster = truth(population)
    rules = default_rules()
    for kind in KINDS:
        definition = load(CONNECTORS / f"{kind}.toml")
        evaluation = evaluate(
            population / f"{kind}.csv",
            definition.plan(rules),
            rejected_path=population.parent / f"rejected-{kind}.csv",
        )
        counts = document["extracts"][kind]
        assert (evaluation.rows, evaluation.people) == (counts["rows"], counts["people"])
        assert dict(evaluation.rejected) == counts["rejected"]
        # every kind of junk row occurs, even in a population this small
        assert set(counts["rejected"]) >= {"invalid_id"} | (
            {"duplicate"} if not definition.many_rows else set()
        )
        implied = {
            key: {c for bit, c in enumerate(definition.flag_codes) if mask >> bit & 1}
            for key, mask in evaluation.entries.items()
        }
        if definition.roster:
            assert set(implied) == roster
            continue
        mine = set(definition.flag_codes)
        expected = {i: f & mine for i, f in flagged.items() if f & mine}
        assert {i: f for i, f in implied.items() if f} == expected
        assert evaluation.flagged == counts["flagged"]
    # truth.json's counts agree with truth.csv
    per_flag = Counter(code for flags in flagged.values() for code in flags)
    assert {code: document["flags"][code]["population"] for code in FLAG_CODES} == {
        code: per_flag[code] for code in FLAG_CODES
    }
    assert document["roster"] == len(roster)
    assert document["roster_flagged"] == len(roster & set(flagged))


def test_the_population_is_plausible(tmp_path: Path) -> None:
    generate(3000, 7, tmp_path)
    with (tmp_path / "population.csv").open(encoding="utf-8") as file:
        people = list(csv.DictReader(file))
    assert len(people) == 3000
    ids = [p["national_id"] for p in people]
    assert len(set(ids)) == len(ids)
    assert all(normalise(i, "iq.ncn") == i for i in ids)  # valid, canonical, never placeholders
    households: dict[str, list[dict[str, str]]] = {}
    for person in people:
        households.setdefault(person["household"], []).append(person)
    assert all(h[0]["role"] == "head" for h in households.values())
    assert all(sum(p["role"] == "head" for p in h) == 1 for h in households.values())
    assert all(len({p["on_roster"] for p in h}) == 1 for h in households.values())
    assert 4.0 < len(people) / len(households) < 7.0
    roster_share = sum(p["on_roster"] == "1" for p in people) / len(people)
    assert 0.33 < roster_share < 0.47
    for members in households.values():
        head = members[0]
        for child in (p for p in members if p["role"] in ("son", "daughter")):
            assert int(child["birth_year"]) >= int(head["birth_year"]) - 30
            if head["sex"] == "M":
                assert child["father_name"] == head["given_name"]
                assert child["family_name"] == head["family_name"]
    assert len({p["governorate"] for p in people}) >= 15
    document = json.loads((tmp_path / "truth.json").read_text())
    loans = document["flags"]["bank.large_loan"]["population"]
    assert 0.004 < loans / len(people) < 0.04  # "a few percent" hold large loans
    with (tmp_path / "bank.csv").open(encoding="utf-8") as file:
        cells = [row["principal_outstanding_iqd"] for row in csv.DictReader(file)]
    amounts = []
    for cell in cells:
        with contextlib.suppress(ValueError):  # the junk rows
            amounts.append(parse_number(cell))
    assert sum(a < 50_000_000 for a in amounts) > 0.75 * len(amounts)  # most loans are small


def test_extracts_are_messy_the_way_real_ones_are(population: Path) -> None:
    roster = (population / "welfare.csv").read_bytes()
    assert roster.startswith(b"\xef\xbb\xbf")  # Excel's "CSV UTF-8"
    with (population / "welfare.csv").open(encoding="utf-8-sig") as file:
        cells = [row["رقم البطاقة الوطنية"] for row in csv.DictReader(file)]
    spellings = Counter(
        "arabic" if set(c) & ARABIC_DIGITS else "plain" if c.isdigit() else "other" for c in cells
    )
    assert spellings["arabic"] > 0.15 * len(cells)
    assert spellings["plain"] > 0.5 * len(cells)
    invalid = 0
    for cell in cells:
        try:
            normalise(cell, "iq.ncn")
        except InvalidIdentifier:
            invalid += 1
    assert 0 < invalid < 0.03 * len(cells)


def test_ids_come_from_a_permutation() -> None:
    permutation = IdPermutation(random.Random(1))
    sample = [permutation(i) for i in range(50_000)]
    assert len(set(sample)) == len(sample)
    assert all(0 <= n < 10**12 for n in sample)
    assert sum(n < 10**11 for n in sample) > 0  # leading zeros occur, as on real cards
    assert Population(10, 1).people == 10
    with pytest.raises(ValueError, match="at least one person"):
        Population(0, 1)


def test_the_command_line(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "data"
    result = runner.invoke(
        synth_app, ["generate", "--people", "300", "--seed", "5", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "ground truth" in result.output
    assert (out / "truth.json").exists()
    again = runner.invoke(synth_app, ["generate", "--people", "300", "--out", str(out)])
    assert again.exit_code != 0
    # However the terminal width wraps it inside the error box:
    assert "is not empty" in " ".join(again.output.replace("│", " ").split())
    forced = runner.invoke(
        synth_app, ["generate", "--people", "300", "--seed", "5", "--out", str(out), "--overwrite"]
    )
    assert forced.exit_code == 0, forced.output
