"""Figure 7: the ministry's desk turning a match job's result into its beneficiary list.

A roster extract in the welfare layout (``connectors/welfare.toml``: beneficiary ID, household
form number, national ID, name, governorate) of ``desk_roster`` people in households of five,
registered once by the desk's own code (`matchhub.agency.desk.roster.build`: read, normalise,
hash, index). A job result in the broker's CSV layout (``token,flag,source,as_of``, a row per
flag) for ``desk_flagged`` of them, one or two flags each, held in memory as the bytes the
broker would stream.

- **matchhub**: parse the result, find every token in the roster's index, write the
  beneficiary list, the household list and the summary (`matchhub.agency.desk.resolve`), from
  opening the index to the last byte written. The HTTP transfer is not included.
- **baseline**: read the same extract with the standard ``csv`` module and hash each national
  ID to its token (normalise + `Tokeniser.token_bytes`): what any way of mapping tokens back
  to people must at least do once, and what the desk did when it registered the roster.

Target: the resolution takes at most twice the baseline. Never part of pass/fail.
"""

from __future__ import annotations

import csv
import random
import shutil
import time
from pathlib import Path

from benchmarks.config import Context
from benchmarks.measure import Comparison, Figure
from matchhub.agency.connector.definition import load
from matchhub.agency.desk.resolve import parse_results, resolve
from matchhub.agency.desk.roster import RosterIndex, build
from matchhub.protocol.tokens import MatchingKey, Tokeniser, get_scheme, normalise
from matchhub.synth.population import IdPermutation

DEFINITION = Path(__file__).resolve().parents[1] / "connectors" / "welfare.toml"
ID_COLUMN = "رقم البطاقة الوطنية"
HEADER = ("رقم المستفيد", "رقم الاستمارة", ID_COLUMN, "الاسم الثلاثي واللقب", "المحافظة")
GOVERNORATES = ("بغداد", "البصرة", "نينوى", "أربيل", "النجف", "ذي قار", "الأنبار", "بابل")
NAMES = ("محمد", "علي", "حسين", "فاطمة", "زينب", "أحمد", "مريم", "عباس", "كريم", "نور")
FLAGS = (
    ("bank.large_loan", "bank"),
    ("pension.recipient", "pension"),
    ("traffic.vehicle_owner", "traffic"),
    ("trade.fuel_station_owner", "trade"),
    ("education.employee", "education"),
)
CHUNK = 1 << 20


def write_extract(path: Path, people: int) -> list[str]:
    """The roster extract; returns the national IDs in row order."""
    permutation = IdPermutation(random.Random(77))  # noqa: S311 (benchmark data)
    rng = random.Random(78)  # noqa: S311
    ids: list[str] = []
    with path.open("w", encoding="utf-8-sig", newline="", buffering=1 << 20) as file:
        writer = csv.writer(file, lineterminator="\r\n")
        writer.writerow(HEADER)
        for n in range(people):
            national = f"{permutation(n + 1):012d}"
            ids.append(national)
            household = n // 5
            writer.writerow(
                (
                    f"MB{n + 1:09d}",
                    f"H-{household:08d}",
                    national,
                    f"{rng.choice(NAMES)} {rng.choice(NAMES)} {rng.choice(NAMES)}",
                    GOVERNORATES[household % len(GOVERNORATES)],
                )
            )
    return ids


def job_result(ids: list[str], flagged: int, key: MatchingKey) -> bytes:
    """The broker's CSV result for `flagged` members spread over the roster, in roster order."""
    tokeniser = Tokeniser(key, "iq.ncn")
    step = max(len(ids) // max(flagged, 1), 1)
    rng = random.Random(79)  # noqa: S311 (benchmark data)
    lines = ["token,flag,source,as_of"]
    for national in ids[::step][:flagged]:
        token = tokeniser.token(national)
        for code, source in rng.sample(FLAGS, 1 if rng.random() < 0.85 else 2):
            lines.append(f"{token},{code},{source},2026-11-30")
    return ("\r\n".join(lines) + "\r\n").encode()


def baseline(extract: Path, key: MatchingKey) -> int:
    """Read the extract and hash every national ID: the floor of any token-to-person map."""
    tokeniser = Tokeniser(key, "iq.ncn")
    scheme = get_scheme("iq.ncn")
    count = 0
    with extract.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        column = next(reader).index(ID_COLUMN)
        token = tokeniser.token_bytes
        for row in reader:
            token(normalise(row[column], scheme))
            count += 1
    return count


def run(ctx: Context) -> Figure:
    s = ctx.sizes
    figure = Figure("desk_resolve", "Desk: a job result resolved into the beneficiary list")
    folder = ctx.root / "desk"
    folder.mkdir(parents=True, exist_ok=True)
    key = MatchingKey.generate("benchmark")
    extract = folder / "welfare.csv"
    ctx.say(f"writing a {s.desk_roster:,}-member roster extract")
    ids = write_extract(extract, s.desk_roster)
    result = job_result(ids, s.desk_flagged, key)
    del ids
    started = time.perf_counter()
    build(extract, load(DEFINITION), key, folder / "index")
    registration = time.perf_counter() - started
    figure.sizes = {
        "roster": s.desk_roster,
        "flagged": s.desk_flagged,
        "result_bytes": len(result),
        "extract_bytes": extract.stat().st_size,
    }
    figure.extra["registration_seconds"] = round(registration, 3)
    mine = figure.add_series("matchhub", "resolve into the lists", "s", higher_is_better=False)
    base = figure.add_series(
        "baseline", "read the extract and hash its IDs", "s", higher_is_better=False
    )
    for n in range(ctx.repeat):
        out = folder / f"lists-{n}"
        started = time.perf_counter()
        parsed = parse_results(result[i : i + CHUNK] for i in range(0, len(result), CHUNK))
        with RosterIndex(folder / "index") as index:
            summary = resolve(parsed, index, {}, out)
        mine.add(time.perf_counter() - started)
        assert summary["flagged_beneficiaries"] == s.desk_flagged, summary
        shutil.rmtree(out)
        started = time.perf_counter()
        rows = baseline(extract, key)
        base.add(time.perf_counter() - started)
        assert rows == s.desk_roster
        ctx.say(
            f"desk {n + 1}/{ctx.repeat}: resolve {mine.samples[-1]:.2f} s, "
            f"read + hash {base.samples[-1]:.2f} s"
        )
    figure.comparisons.append(
        Comparison(
            "desk resolution / read + hash",
            figure.ratio("matchhub", "baseline"),
            "<= 2",
            2.0,
            at_least=False,
        )
    )
    figure.notes.append(
        f"registering the roster (read, hash, index) took {registration:.2f} s once; the "
        "result's HTTP transfer is not included"
    )
    shutil.rmtree(folder, ignore_errors=True)
    return figure
