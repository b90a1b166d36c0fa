"""``matchhub-connect push`` against a real broker over mutual TLS, on SQLite and PostgreSQL.

The whole synthetic population goes through all six provider connectors and the roster, and
the broker's current snapshots must equal the generator's ground truth exactly. Then each bad
input exits non-zero with a one-line message and changes nothing, and a connector killed with
SIGKILL mid-upload resumes to the same snapshot as an unbroken push.
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from matchhub.agency.connector import cli as connector_cli
from matchhub.agency.connector.client import AgencyCredentials, make_client
from matchhub.cli.processes import free_port
from matchhub.keystore import pki
from matchhub.keystore.material import load_key_material
from matchhub.protocol.checkpoint import sign_checkpoint, verify_checkpoint
from matchhub.protocol.tokens import MatchingKey
from tests.connect.conftest import CODES, CONNECTORS, KINDS, Agencies, Broker, connect, truth
from tests.pki import other_ca

ID_COLUMN = "رقم البطاقة الوطنية"


@pytest.mark.settings(audit_checkpoint_every=1)  # each connector's check after its push sees it
def test_the_whole_population_equals_the_ground_truth(
    agencies: Agencies, broker: Broker, population: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected_counts = json.loads((population / "truth.json").read_text())["extracts"]
    for number, kind in enumerate(KINDS):
        fmt = "ndjson" if number % 2 else "compact"  # both wire formats, several chunks each
        outcome = agencies.push(
            capsys, kind, population / f"{kind}.csv", "--format", fmt, "--chunk-rows", "97"
        )
        assert outcome.status == 0, outcome.text
        report, counts = outcome.report, expected_counts[kind]
        assert report["state"] == "committed"
        assert (report["rows_read"], report["people"]) == (counts["rows"], counts["people"])
        assert report["rejected"] == counts["rejected"]
        assert report["flagged"] == counts["flagged"]
        assert report["rows_sent"] == report["rows_to_send"] > 0
        assert report["witness"].startswith("checked: the signed audit log grew")

    flagged, roster = truth(population)
    assert broker.flags() == broker.expected(flagged)
    assert broker.roster() == {broker.stored(national_id) for national_id in roster}
    # The population had IDs in Arabic-Indic digits and with separators, and repeats spelled
    # differently: the exact equality above shows each counted as the one person it is.
    roster_text = (population / "welfare.csv").read_text(encoding="utf-8-sig")
    assert any("٠" <= ch <= "٩" for ch in roster_text)


def test_messy_but_valid_ids_are_one_person(
    agencies: Agencies, broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    person, other = "123456789012", "098765432109"
    extract = tmp_path / "loans.csv"
    rows = [
        "customer_nid,principal_outstanding_iqd,accrued_interest_iqd",
        f'{person},"30,000,000",0',
        "١٢٣٤٥٦٧٨٩٠١٢,١٥٬٠٠٠٬٠٠٠,0",  # the same person in Arabic-Indic digits
        f'{person[:4]}-{person[4:8]}-{person[8:]},"4,999,999",1',  # with dashes: 50,000,000
        f"\u200f{other},49999999,0",
        f"{other[:4]} {other[4:8]} {other[8:]},0,0",  # 49,999,999 in all: not flagged
    ]
    extract.write_text("\n".join(rows) + "\n", encoding="utf-8")
    outcome = agencies.push(capsys, "bank", extract)
    assert outcome.status == 0, outcome.text
    assert (outcome.report["rows_read"], outcome.report["people"]) == (5, 2)
    assert outcome.report["flagged"] == {"bank.large_loan": 1}
    assert broker.flags() == {broker.stored(person): {("rafidain", "bank.large_loan")}}


def test_invalid_ids_are_rejected_by_line_without_the_id(
    agencies: Agencies, broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, short, formatted = "012345678901", "12345678901", "1.23457E+11"
    extract = tmp_path / "roster.csv"
    extract.write_text(
        f'{ID_COLUMN},الاسم\n{good},أ\n{short},ب\n{formatted},ج\n000000000000,د\n"{good}",ه\n,و\n',
        encoding="utf-8",
    )
    outcome = agencies.push(capsys, "welfare", extract)
    assert outcome.status == 0, outcome.text
    rejected = (agencies.out("welfare") / "rejected.csv").read_text()
    assert rejected.splitlines() == [
        "line,reason,detail",
        "3,invalid_id,wrong_length",
        "4,invalid_id,bad_character",
        "5,invalid_id,placeholder",
        "6,duplicate,",
        "7,invalid_id,empty",
    ]
    assert outcome.report["rejected"] == {"duplicate": 1, "invalid_id": 4}
    everything = rejected + outcome.text + json.dumps(outcome.report)
    for raw in (good, short, formatted, "23457"):
        assert raw not in everything
    assert broker.roster() == {broker.stored(good)}


# --- bad input: one clear line, a non-zero exit, nothing committed ---------------------------


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_bad_inputs_exit_non_zero_and_commit_nothing(
    agencies: Agencies,
    broker: Broker,
    population: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A committed snapshot first: every failure below must leave it exactly as it is.
    assert agencies.push(capsys, "pension", population / "pension.csv").status == 0
    before = broker.snapshot()
    pension_header = f"{ID_COLUMN},حالة الصرف\n"

    def fails(kind: str, extract: Path, *extra: str, expect: tuple[str, ...]) -> str:
        outcome = agencies.push(capsys, kind, extract, *extra, name=f"bad-{extract.stem}")
        assert outcome.status != 0, outcome.text
        message = outcome.err.strip().splitlines()[-1]
        assert message.startswith("error: "), outcome.err
        for fragment in expect:
            assert fragment in message, message
        assert broker.snapshot() == before
        return message

    no_id = _write(tmp_path / "no-id.csv", "الرقم,حالة الصرف\n123456789012,مستمر\n")
    fails("pension", no_id, expect=(str(no_id), "line 1", f"no column '{ID_COLUMN}'", "id.column"))

    no_rule = _write(tmp_path / "no-rule.csv", f"{ID_COLUMN},الحالة\n123456789012,مستمر\n")
    fails(
        "pension",
        no_rule,
        expect=(str(no_rule), "line 1", "'حالة الصرف'", 'flags."pension.recipient".column'),
    )

    utf16 = _write(tmp_path / "utf16.csv", pension_header + "123456789012,مستمر\n", "utf-16")
    fails("pension", utf16, expect=(str(utf16), "line 1", "UTF-16"))

    cp1256 = _write(tmp_path / "cp1256.csv", pension_header + "123456789012,مستمر\n", "cp1256")
    fails("pension", cp1256, expect=(str(cp1256), "line 1", "not UTF-8"))

    # A UTF-8 export with rows appended later from a Windows-1256 ("ANSI") spreadsheet.
    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes(
        (pension_header + "123456789012,مستمر\n").encode() + "123456789013,موقوف\n".encode("cp1256")
    )
    fails("pension", mixed, expect=(str(mixed), "line 3", "not UTF-8", "byte 0xE3 at byte 14"))

    # Latin-1: the universities' export with an accented name on line 3.
    latin = _write(
        tmp_path / "latin1.csv",
        "national_id,on_payroll,institution\n123456789012,yes,Baghdad\n"
        "123456789013,no,Université de Mossoul\n",
        "latin-1",
    )
    fails("higher_education", latin, expect=(str(latin), "line 3", "not UTF-8"))

    # The ministry's key file of another ceremony: a version the broker never registered.
    stale = MatchingKey.generate("v-not-registered")
    stale_file = tmp_path / "stale-key.json"
    stale.to_file(stale_file)
    args = agencies.args("pension", population / "pension.csv", name="stale-key")
    args[args.index("--matching-key") + 1] = str(stale_file)
    outcome = connect(capsys, args, None)
    assert outcome.status == 1
    assert "--matching-key" in outcome.err
    assert "'v-not-registered'" in outcome.err
    assert "unknown_key_version" in outcome.err
    assert broker.snapshot() == before

    # The broker unreachable: nothing listens on this port.
    args = agencies.args("pension", population / "pension.csv", name="unreachable")
    args[args.index("--broker") + 1] = f"https://127.0.0.1:{free_port()}"
    outcome = connect(capsys, args, None)
    assert outcome.status == 1
    assert "cannot reach the broker" in outcome.err
    assert "(--broker)" in outcome.err
    assert broker.snapshot() == before

    # A broker certificate from another CA than the agency was given (ca.pem swapped).
    rogue = tmp_path / "rogue-ca"
    shutil.copytree(agencies.credentials("pension"), rogue)
    (rogue / "ca.pem").write_bytes(pki.cert_pem(other_ca("matchhub").certificate))
    args = agencies.args("pension", population / "pension.csv", name="rogue")
    args[args.index("--credentials") + 1] = str(rogue)
    outcome = connect(capsys, args, None)
    assert outcome.status == 1
    assert "does not verify against" in outcome.err
    assert str(rogue / "ca.pem") in outcome.err
    assert broker.snapshot() == before

    # A definition for another kind of agency than the certificate's.
    args = agencies.args("pension", population / "bank.csv", name="wrong-kind")
    args[args.index("--definition") + 1] = str(CONNECTORS / "bank.toml")
    outcome = connect(capsys, args, None)
    assert outcome.status == 1
    assert "is for bank agencies" in outcome.err
    assert "as a pension agency" in outcome.err
    assert broker.snapshot() == before


def test_an_extract_flagging_nobody_clears_the_agencys_flags(
    agencies: Agencies,
    broker: Broker,
    population: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert agencies.push(capsys, "pension", population / "pension.csv").status == 0
    assert broker.flags()
    stopped = _write(
        tmp_path / "all-stopped.csv",
        f"{ID_COLUMN},حالة الصرف\n123456789012,موقوف\n",
    )
    outcome = agencies.push(capsys, "pension", stopped)
    assert outcome.status == 0, outcome.text
    assert (outcome.report["rows_to_send"], outcome.report["state"]) == (0, "committed")
    assert broker.flags() == {}  # a snapshot replaces the last one: stopped pensions un-flag


def test_too_many_rejected_rows_refuse_the_push(
    agencies: Agencies, broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A wrong column mapped as the ID (here: phone numbers) must not replace a good snapshot
    # with an empty one.
    extract = _write(
        tmp_path / "phones.csv",
        f"{ID_COLUMN},حالة الصرف\n" + "".join(f"0770{n:07d},مستمر\n" for n in range(20)),
    )
    outcome = agencies.push(capsys, "pension", extract)
    assert outcome.status == 1
    assert "100.0% of rows rejected" in outcome.err
    assert "--max-rejected" in outcome.err
    assert broker.uploads() == []


def test_an_interrupted_push_resumes_to_the_same_snapshot(
    agencies: Agencies, broker: Broker, population: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extract = population / "welfare.csv"
    killed = agencies.killed_after(4, "welfare", extract, "--chunk-rows", "10")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ((upload_id, state, rows, chunks),) = broker.uploads()
    assert (state, rows, chunks) == ("open", 40, 4)
    assert broker.roster() == set()  # nothing visible before the commit
    state_file = agencies.work / "state" / f"{CODES['welfare']}.welfare.json"
    assert json.loads(state_file.read_text())["upload_id"] == upload_id

    resumed = agencies.push(capsys, "welfare", extract, "--chunk-rows", "10")
    assert resumed.status == 0, resumed.text
    assert resumed.report["upload_id"] == upload_id
    assert resumed.report["resumed_from_chunk"] == 4
    assert resumed.report["rows_sent"] == resumed.report["rows_to_send"] - 40
    assert not state_file.exists()
    ((_, state, rows, _),) = broker.uploads()
    assert (state, rows) == ("committed", resumed.report["rows_to_send"])
    after_resume = broker.roster()

    # An unbroken push of the same extract gives the very same snapshot.
    unbroken = agencies.push(capsys, "welfare", extract, "--chunk-rows", "10")
    assert unbroken.status == 0, unbroken.text
    assert unbroken.report["upload_id"] != upload_id
    assert broker.roster() == after_resume
    _, roster = truth(population)
    assert after_resume == {broker.stored(national_id) for national_id in roster}


class LosesTheCommitsAnswer(httpx.BaseTransport):
    """The network between connector and broker: the commit reaches the broker, which
    commits, and its answer is lost on the way back, ``times`` times."""

    def __init__(self, inner: httpx.BaseTransport, times: int) -> None:
        self.inner, self.times, self.lost = inner, times, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/commit") and self.lost < self.times:
            response.read()
            response.close()
            self.lost += 1
            raise httpx.ReadError("the connection dropped before the answer", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("losses", [1, 50], ids=["once", "every-retry"])
def test_a_commit_whose_answer_is_lost_is_reported_committed(
    agencies: Agencies,
    broker: Broker,
    *,
    population: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    losses: int,
) -> None:
    """Once: the transport sends the commit again and the broker answers the committed upload.
    On every retry: the CLI asks the broker before it says anything. Either way it reports the
    snapshot committed (it once said "Nothing was committed" of a committed one)."""
    network: list[LosesTheCommitsAnswer] = []

    def connector_client(base: str, creds: AgencyCredentials, **options: Any) -> httpx.Client:
        inner = httpx.HTTPTransport(verify=creds.ssl_context())
        network.append(LosesTheCommitsAnswer(inner, losses))
        return make_client(base, creds, transport=network[-1], backoff=0.01, **options)

    monkeypatch.setattr(connector_cli, "make_client", connector_client)
    outcome = agencies.push(capsys, "bank", population / "bank.csv", "--chunk-rows", "50")
    assert outcome.status == 0, outcome.text
    assert "Nothing was committed" not in outcome.text
    assert outcome.report["state"] == "committed"
    assert outcome.report["witness"].startswith("checked: the signed audit log")
    assert network[-1].lost == min(losses, 5)  # the transport's five tries
    ((upload_id, state, _, _),) = broker.uploads()
    assert (outcome.report["upload_id"], state) == (upload_id, "committed")
    flagged, _ = truth(population)
    loans = {i: {"bank.large_loan"} for i, f in flagged.items() if "bank.large_loan" in f}
    assert broker.flags() == broker.expected(loans)


def test_a_rerun_with_other_inputs_aborts_the_stale_upload(
    agencies: Agencies, broker: Broker, population: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extract = population / "bank.csv"
    killed = agencies.killed_after(1, "bank", extract, "--chunk-rows", "5")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # Other chunking gives other chunk bodies: resuming would mix two uploads, so a new one.
    fresh = agencies.push(capsys, "bank", extract, "--chunk-rows", "7")
    assert fresh.status == 0, fresh.text
    assert any("aborted the stale upload" in note for note in fresh.report["notes"])
    assert [state for _, state, _, _ in broker.uploads()] == ["aborted", "committed"]
    flagged, _ = truth(population)
    loans = {i: {"bank.large_loan"} for i, f in flagged.items() if "bank.large_loan" in f}
    assert broker.flags() == broker.expected(loans)


def test_rules_come_from_the_broker_and_can_be_saved_for_a_dry_run(
    agencies: Agencies, population: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_file = tmp_path / "rules.json"
    saved = connect(
        capsys,
        [
            "rules",
            "--definition",
            str(CONNECTORS / "bank.toml"),
            "--credentials",
            str(agencies.credentials("bank")),
            "--code",
            CODES["bank"],
            "--broker",
            agencies.server.url,
            "--out",
            str(rules_file),
        ],
        None,
    )
    assert saved.status == 0, saved.text
    document = json.loads(rules_file.read_text())
    assert [f["code"] for f in document["flags"]] == ["bank.large_loan"]
    assert document["flags"][0]["rule"]["params"]["threshold"] == 50_000_000

    # Raise the threshold in the saved copy: the dry run applies the file's rule, not a default.
    document["flags"][0]["rule"]["params"]["threshold"] = 10**12
    rules_file.write_text(json.dumps(document))
    out = tmp_path / "dry"
    dry = connect(
        capsys,
        [
            "push",
            "--dry-run",
            "--no-progress",
            "--definition",
            str(CONNECTORS / "bank.toml"),
            "--extract",
            str(population / "bank.csv"),
            "--rules",
            str(rules_file),
            "--out",
            str(out),
        ],
        out,
    )
    assert dry.status == 0, dry.text
    assert dry.report["flagged"] == {"bank.large_loan": 0}
    assert dry.report["rules"] == f"from {rules_file}"
    assert dry.report["state"].startswith("dry run")


def test_the_witness_catches_a_broker_showing_an_older_log(
    agencies: Agencies, broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a push the connector remembers the log's checkpoint; a broker that later shows a
    log smaller than that (a rollback) is refused before anything is sent."""
    extract = tmp_path / "loans.csv"
    extract.write_text(
        "customer_nid,principal_outstanding_iqd,accrued_interest_iqd\n123456789012,60000000,0\n",
        encoding="utf-8",
    )
    first = agencies.push(capsys, "bank", extract)
    assert first.status == 0, first.text
    state = agencies.work / "state" / f"{CODES['bank']}.audit" / "audit-witness.json"
    saved = json.loads(state.read_text())
    # What the connector would hold had it seen the log at a later, larger size: a checkpoint
    # signed with the hub's real key. The broker's real log is now "behind" it.
    hub = agencies.hub
    signer = load_key_material(hub.paths).audit_signing_key
    key = (state.parent / "audit-verifier.key").read_text().strip()
    origin = verify_checkpoint(saved["note"], key).origin
    later = sign_checkpoint(origin, 10**6, b"\x01" * 32, origin, signer)
    root = base64.b64encode(b"\x01" * 32).decode()
    state.write_text(json.dumps({**saved, "note": later, "size": 10**6, "root": root}))
    uploads_before = broker.uploads()
    second = agencies.push(capsys, "bank", extract, name="second")
    assert second.status == 1
    assert "rollback" in second.text
    assert broker.uploads() == uploads_before
