"""Reading extracts offline: aggregation, duplicates, line numbers, fatal file problems, and the
chunks that leave the connector (which must parse back on the broker's side)."""

from __future__ import annotations

from pathlib import Path

import pytest

from matchhub.agency.connector.definition import Plan, default_rules, load
from matchhub.agency.connector.extract import (
    Evaluation,
    ExtractError,
    evaluate,
    token_rows,
    wire_chunks,
)
from matchhub.protocol.tokens import MatchingKey, Tokeniser
from matchhub.protocol.wire import COMPACT, NDJSON, parse
from tests.connect.conftest import CONNECTORS, connect

KEY = MatchingKey("test-v1", bytes(range(32)))
A, B, C = "123456789012", "234567890123", "345678901234"
ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def _plan(kind: str) -> Plan:
    return load(CONNECTORS / f"{kind}.toml").plan(default_rules())


def _read(tmp_path: Path, kind: str, text: str, encoding: str = "utf-8") -> Evaluation:
    extract = tmp_path / f"{kind}.csv"
    extract.write_bytes(text.encode(encoding))
    return evaluate(extract, _plan(kind), rejected_path=tmp_path / "rejected.csv")


def _rejected(tmp_path: Path) -> list[str]:
    return (tmp_path / "rejected.csv").read_text().splitlines()[1:]


def test_a_borrowers_loans_are_summed_before_the_threshold(tmp_path: Path) -> None:
    header = "customer_nid,principal_outstanding_iqd,accrued_interest_iqd\n"
    evaluation = _read(
        tmp_path,
        "bank",
        header
        + f'{A},"30,000,000",0\n'
        + f"{A.translate(ARABIC)},١٩٬٩٩٩٬٩٩٩,1\n"  # A: exactly 50,000,000 — at the threshold
        + f'{B},"49,999,999.49",0.50\n'  # B: 49,999,999.99 — just under
        + f"{C},50000000,\n"  # C: the interest cell is empty: rejected, C is not counted
        + f'{C},"10,000",x\n',
    )
    assert evaluation.rows == 5
    assert evaluation.people == 2
    assert evaluation.flagged == {"bank.large_loan": 1}
    assert evaluation.entries == {A: 1, B: 0}
    assert _rejected(tmp_path) == [
        "5,missing_field,outstanding_loans_iqd",
        "6,invalid_value,outstanding_loans_iqd",
    ]


def test_vehicles_in_force_are_counted_and_activities_matched(tmp_path: Path) -> None:
    traffic = _read(
        tmp_path,
        "traffic",
        "رقم البطاقة الوطنية للمالك,حالة التسجيل\n"
        f"{A},ملغى\n{A},ملغي\n{B},ملغى\n{B},نافذ\n{C},ساري\n",
    )
    assert traffic.entries == {A: 0, B: 1, C: 1}
    trade = _read(
        tmp_path,
        "trade",
        "\u200fرقم البطاقة الوطنية ,نوع النشاط\n"  # a pasted RLM and a trailing space
        f"{A},مخبز\n{A},مولدة اهلية\n{B},محطة غاز\n{B},محطة وقود\n{C},NULL\n",
    )
    fuel, gas, generator = 1, 2, 4  # bits in the definition's order
    assert trade.entries == {A: generator, B: fuel | gas}
    assert _rejected(tmp_path) == ["6,missing_field,owns_fuel_station"]


def test_one_row_per_person_keeps_the_first_and_rejects_repeats(tmp_path: Path) -> None:
    evaluation = _read(
        tmp_path,
        "education",
        "رقم البطاقة الوطنية,يتقاضى راتباً\n"
        f"{A},نعم\n{A[:4]} {A[4:8]} {A[8:]},لا\n{B},\n{B},0\n{B},1\n",
    )
    # A's repeat (spelled with spaces) is a duplicate; B's first row has no value, so B's
    # second row is the first accepted one and the third is the duplicate.
    assert evaluation.entries == {A: 1, B: 0}
    assert _rejected(tmp_path) == ["3,duplicate,", "4,missing_field,on_payroll", "6,duplicate,"]


def test_line_numbers_are_an_editors_even_across_multi_line_cells(tmp_path: Path) -> None:
    evaluation = _read(
        tmp_path,
        "welfare",
        "الاسم,رقم البطاقة الوطنية\n"
        f'"محمد\nعلي",{A}\n'  # one record on lines 2 and 3
        "\n"  # a blank line is not a row
        f"x,{B}1\n"  # line 5: 13 digits
        f"y,{C}\n",
    )
    assert evaluation.rows == 3
    assert _rejected(tmp_path) == ["5,invalid_id,wrong_length"]


def test_a_prefix_is_stripped_only_when_the_definition_says_so(tmp_path: Path) -> None:
    definition = tmp_path / "prefixed.toml"
    definition.write_text(
        (CONNECTORS / "welfare.toml")
        .read_text(encoding="utf-8")
        .replace('column = "رقم البطاقة الوطنية"', 'column = "id"\nstrip_prefix = ["IQ-"]'),
        encoding="utf-8",
    )
    extract = tmp_path / "ids.csv"
    extract.write_text(f"id\nIQ-{A}\n{B}\nIQ{C}\n", encoding="utf-8")
    evaluation = evaluate(
        extract, load(definition).plan({}), rejected_path=tmp_path / "rejected.csv"
    )
    assert evaluation.entries == {A: 0, B: 0}
    assert _rejected(tmp_path) == ["4,invalid_id,bad_character"]


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (b"", ("the extract is empty",)),
        ("رقم,الحالة\n".encode("utf-16"), ("line 1", "UTF-16")),
        ("رقم,الحالة\n".encode("utf-16-le"), ("line 1", "NUL bytes")),
        ("رقم,الحالة\n".encode("cp1256"), ("line 1", "not UTF-8", "iconv")),
        (
            f'رقم البطاقة الوطنية,حالة الصرف\n{A},مستمر\n"{B},مستمر\n'.encode(),
            ("not valid CSV",),
        ),
        (
            f"رقم البطاقة الوطنية,حالة الصرف,حالة الصرف\n{A},مستمر,موقوف\n".encode(),
            ("line 1", "'حالة الصرف'", "appears more than once"),
        ),
        (
            f"حالة الصرف,الاسم\nمستمر,{A}\n".encode(),
            ("line 1", "no column 'رقم البطاقة الوطنية'", "the header has: 'حالة الصرف', 'الاسم'"),
        ),
    ],
)
def test_a_file_that_cannot_be_read_stops_everything(
    tmp_path: Path, content: bytes, fragments: tuple[str, ...]
) -> None:
    extract = tmp_path / "pension.csv"
    extract.write_bytes(content)
    with pytest.raises(ExtractError) as caught:
        evaluate(extract, _plan("pension"), rejected_path=tmp_path / "rejected.csv")
    message = str(caught.value)
    assert message.startswith(f"{extract}: "), message
    for fragment in fragments:
        assert fragment in message, message


def test_a_headerless_extract_is_refused_without_quoting_its_first_row(tmp_path: Path) -> None:
    extract = tmp_path / "pension.csv"
    extract.write_text(f"{A},علي حسن,مستمر\n{B},زينب,مستمر\n", encoding="utf-8")
    with pytest.raises(ExtractError) as caught:
        evaluate(extract, _plan("pension"), rejected_path=tmp_path / "rejected.csv")
    message = str(caught.value)
    assert "looks like data, not a header" in message
    assert A not in message
    assert "علي" not in message


def test_chunks_parse_back_on_the_broker_side(tmp_path: Path) -> None:
    evaluation = _read(
        tmp_path,
        "trade",
        "رقم البطاقة الوطنية,نوع النشاط\n"
        + "".join(
            f"{n:012d},{activity}\n"
            for n, activity in zip(
                range(100_000_000_001, 100_000_000_031),
                ["محطة وقود", "محطة غاز", "مولدة أهلية", "مخبز", "محطة وقود"] * 6,
                strict=True,
            )
        ),
    )
    tokeniser = Tokeniser(KEY, "iq.ncn")
    expected = [
        (tokeniser.token_bytes(key), mask) for key, mask in evaluation.entries.items() if mask
    ]
    assert len(expected) == 24  # the bakeries carry no flag and are not sent
    codes = evaluation.flag_codes
    for media_type in (COMPACT, NDJSON):
        chunks = list(
            wire_chunks(
                token_rows(evaluation, tokeniser),
                flag_codes=codes,
                media_type=media_type,
                chunk_rows=7,
                roster=False,
            )
        )
        assert [c.seq for c in chunks] == [0, 1, 2, 3]
        assert [c.rows for c in chunks] == [7, 7, 7, 3]
        rows = []
        for chunk in chunks:
            columns = parse(chunk.body, media_type, codes, roster=False)
            rows += [
                (columns.tokens[32 * i : 32 * i + 32], int(columns.masks[i]))
                for i in range(len(columns))
            ]
        assert rows == expected
    # A chunk also closes at its byte limit, whatever --chunk-rows says.
    small = list(
        wire_chunks(
            token_rows(evaluation, tokeniser),
            flag_codes=codes,
            media_type=NDJSON,
            chunk_rows=1000,
            roster=False,
            max_bytes=400,
        )
    )
    assert all(len(c.body) <= 400 for c in small)
    assert sum(c.rows for c in small) == 24


def test_a_roster_sends_everyone_accepted(tmp_path: Path) -> None:
    evaluation = _read(tmp_path, "welfare", f"رقم البطاقة الوطنية\n{A}\n{B}\n{A}\n")
    tokeniser = Tokeniser(KEY, "iq.ncn")
    rows = list(token_rows(evaluation, tokeniser))
    assert rows == [(tokeniser.token_bytes(A), 0), (tokeniser.token_bytes(B), 0)]
    (chunk,) = wire_chunks(
        iter(rows), flag_codes=(), media_type=COMPACT, chunk_rows=10, roster=True
    )
    assert len(chunk.body) == 64


def test_a_dry_run_needs_no_key_and_contacts_nobody(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extract = tmp_path / "pension.csv"
    extract.write_text(f"رقم البطاقة الوطنية,حالة الصرف\n{A},مستمر\n", encoding="utf-8")
    base = [
        "push",
        "--definition",
        str(CONNECTORS / "pension.toml"),
        "--extract",
        str(extract),
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    dry = connect(capsys, [*base, "--dry-run"], tmp_path / "out")
    assert dry.status == 0, dry.text
    assert dry.report["rules"] == "catalogue defaults (matchhub.protocol.catalogue)"
    assert dry.report["flagged"] == {"pension.recipient": 1}
    online = connect(capsys, [*base, "--dry-run", "--broker", "https://127.0.0.1:1"], None)
    assert online.status == 1
    assert "--dry-run contacts nobody" in online.err
    no_key = connect(capsys, base, None)
    assert no_key.status == 1
    assert "--matching-key is required" in no_key.err
    bad_key = tmp_path / "key.json"
    bad_key.write_text('{"format": "matchhub-matching-key/1", "version": "v1", "key": "c2hvcnQ="}')
    short = connect(capsys, [*base, "--matching-key", str(bad_key)], None)
    assert short.status == 1
    assert "--matching-key" in short.err
    assert "at least 32 bytes" in short.err
    good_key = tmp_path / "good.json"
    KEY.to_file(good_key)
    online_args = [*base, "--matching-key", str(good_key), "--credentials", str(tmp_path)]
    plain = connect(capsys, [*online_args, "--code", "x", "--broker", "http://127.0.0.1"], None)
    assert plain.status == 1
    assert "must be an https:// URL" in plain.err
    no_certs = connect(capsys, [*online_args, "--code", "x", "--broker", "https://a.b"], None)
    assert no_certs.status == 1
    assert f"--credentials {tmp_path}: no x.pem" in no_certs.err
