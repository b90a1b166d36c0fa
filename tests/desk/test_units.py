"""The desk's parts on their own: its migrations, words, numbers and dates, the lookup's ID
parsing, its log's refusal of identifiers, its roster index, and its command line's errors."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from argon2 import Parameters, Type
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect

from matchhub.agency.connector.definition import load
from matchhub.agency.desk import accounts, casework, cli, db, eventlog, i18n
from matchhub.agency.desk.lookup import parse_ids
from matchhub.agency.desk.models import Base
from matchhub.agency.desk.roster import RosterIndex, build
from matchhub.protocol.tokens import MatchingKey, Tokeniser, get_scheme
from matchhub.synth.extracts import generate

REPO = Path(__file__).resolve().parents[2]
SCHEME = get_scheme("iq.ncn")
KEY = MatchingKey("test-v1", b"k" * 32)
ARABIC = re.compile("[\u0600-\u06ff]")


def _url(database_url: str | None, tmp_path: Path) -> str:
    return database_url or f"sqlite:///{tmp_path / 'desk.db'}"


def test_the_desk_migrations_agree_with_its_models_and_go_down_and_up(
    database_url: str | None, tmp_path: Path
) -> None:
    engine = db.make_engine(_url(database_url, tmp_path))
    try:
        db.upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_name": _desk_only}
            )
            assert compare_metadata(context, Base.metadata) == []
        tables = set(inspect(engine).get_table_names())
        assert {"desk_users", "desk_sessions", "desk_events", "desk_alembic_version"} <= tables
        assert "alembic_version" not in tables  # the broker's version table is not the desk's
        db.downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"desk_alembic_version"}
        db.upgrade(engine)
        assert set(inspect(engine).get_table_names()) == tables
    finally:
        engine.dispose()


def _desk_only(name: str | None, type_: str, parent: object) -> bool:
    return type_ != "table" or name in Base.metadata.tables


def test_every_message_has_its_arabic_and_its_english() -> None:
    for key, (arabic, english) in i18n.MESSAGES.items():
        if key == "nav.language":  # the switch names the other language in that language
            assert (arabic, english) == ("English", "العربية")
            continue
        assert ARABIC.search(arabic), key
        assert english.strip(), key
        assert not ARABIC.search(english), key


def test_numbers_and_dates_are_written_as_iraq_writes_them() -> None:
    assert i18n.number(1234567, "ar") == "١٬٢٣٤٬٥٦٧"
    assert i18n.number(1234567, "en") == "1,234,567"
    assert i18n.day(date(2026, 11, 1), "ar") == "١ تشرين الثاني ٢٠٢٦"
    assert i18n.day("2026-01-05", "en") == "5 January 2026"
    # Baghdad is three hours ahead of UTC.
    assert i18n.moment(datetime(2026, 12, 7, 21, 30, tzinfo=UTC), "en") == "8 December 2026, 00:30"


@given(
    st.integers(10**11, 10**12 - 1).filter(lambda n: len(set(str(n))) > 1),
    st.sampled_from(["plain", "arabic", "eastern", "dashes", "spaces"]),
)
@settings(max_examples=60, deadline=None)
def test_a_typed_id_is_read_however_it_is_spelled(number: int, spelling: str) -> None:
    canonical = str(number)
    typed = {
        "plain": canonical,
        "arabic": canonical.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
        "eastern": canonical.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")),
        "dashes": f"{canonical[:4]}-{canonical[4:8]}-{canonical[8:]}",
        "spaces": f" {canonical[:6]} {canonical[6:]} ",
    }[spelling]
    tokeniser = Tokeniser(KEY, SCHEME)
    entries, problems = parse_ids(f"\n{typed}\n\n", SCHEME, tokeniser)
    assert problems == []
    assert [(e.line, e.token) for e in entries] == [(2, tokeniser.token(canonical))]


def test_a_bad_line_is_named_by_number_and_reason_only() -> None:
    tokeniser = Tokeniser(KEY, SCHEME)
    entries, problems = parse_ids("123456789012\n١٢٣٤٥\n000000000000\nabc 1\n", SCHEME, tokeniser)
    assert [(p.line, p.reason) for p in problems] == [
        (2, "wrong_length"),
        (3, "placeholder"),
        (4, "bad_character"),
    ]
    assert len(entries) == 1


def test_the_desk_log_refuses_identifiers_and_tokens(tmp_path: Path) -> None:
    database = db.Database(f"sqlite:///{tmp_path / 'log.db'}")
    db.upgrade(database.engine)
    with database.transaction() as session:
        eventlog.record(session, "sara", "lookup", ids=3, purpose="eligibility_review")
        eventlog.record(session, "sara", "roster.registered", people=12_000_000)
        for value in ("199012345678", "1990-1234-5678", "a" * 64):
            with pytest.raises(ValueError, match="identifiers"):
                eventlog.record(session, "sara", "lookup", id=value)
    database.close()


def test_the_index_finds_every_member_and_no_one_else(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate(400, 3, data)
    built = build(
        data / "welfare.csv", load(REPO / "connectors" / "welfare.toml"), KEY, tmp_path / "r"
    )
    assert built.rejected.get("duplicate", 0) >= 1  # the generator repeats a person
    tokeniser = Tokeniser(KEY, SCHEME)
    members = [
        line.split(",")[0]
        for line in (data / "truth.csv").read_text().splitlines()[1:]
        if line.split(",")[1] == "1"
    ]
    strangers = [f"{n:012d}" for n in range(10**11 + 7, 10**11 + 50)]
    queries = b"".join(tokeniser.token_bytes(i) for i in members + strangers)
    with RosterIndex(tmp_path / "r") as index:
        rows = index.find(queries)
        assert index.size == len(members) == built.people
        assert (rows[: len(members)] >= 0).all()
        assert (rows[len(members) :] == -1).all()
        assert len(set(rows[: len(members)].tolist())) == len(members)
        assert index.person(int(rows[0]))["beneficiary_id"].startswith("MB")


def test_usage_errors_are_one_line_and_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(["match", "--out", "x.csv", "--as", "ali"]) == 2
    assert cli.run(["user", "add", "ali", "--role", "king", "--password-stdin"]) == 2
    assert cli.run(["serve", "--certificate", "c.pem"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert captured.err.count("Usage:") == 3
    assert "Missing option '--purpose'" in captured.err


def test_init_refuses_a_home_that_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "desk"
    home.mkdir()
    (home / "something").write_text("keep me")
    args = [
        "init",
        "--home",
        str(home),
        "--broker",
        "https://hub:8443",
        "--credentials",
        str(tmp_path),
    ]
    args += ["--code", "molsa", "--matching-key", "k", "--definition", "d", "--extract", "e"]
    assert cli.run(args) == 1
    assert "never overwrites" in capsys.readouterr().err
    assert (home / "something").read_text() == "keep me"


def test_serve_refuses_the_suites_cheap_hashing_and_an_unknown_one_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = str(tmp_path / "no-desk")
    for value, says in (
        ("test-only-cheapest", "a desk never serves with them"),
        ("bogus", "is one of rfc9106-low-memory, test-only-cheapest"),
    ):
        monkeypatch.setenv(accounts.PASSWORD_HASHING_ENV, value)
        assert cli.run(["serve", "--home", home]) == 1
        err = capsys.readouterr().err
        assert says in err
        assert "Traceback" not in err


def test_serve_on_a_port_in_use_says_so_and_never_that_it_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The port is taken before the desk is even looked for: one line naming the address,
    exit status 1, and no "serving" line (before, it printed that it served, then failed)."""
    import socket  # noqa: PLC0415

    monkeypatch.delenv(accounts.PASSWORD_HASHING_ENV, raising=False)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = cli.run(["serve", "--home", str(tmp_path / "no-desk"), "--port", str(port)])
    err = capsys.readouterr().err
    assert status == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "serving" not in err
    assert "Traceback" not in err


BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@given(
    st.text(
        alphabet=st.sampled_from([*"ab ٣٤ملاحظة\n\t\r\x00\x1b\u200e\u200f\u061c", *BIDI_CONTROLS])
    )
)
def test_a_kept_note_has_no_bidi_or_control_characters_and_cleaning_is_idempotent(
    text: str,
) -> None:
    kept = casework.clean_note(text)
    assert not set(kept) & set(BIDI_CONTROLS)
    assert all(c in "\n\t" or not (c < " " or c == "\x7f") for c in kept)
    assert casework.clean_note(kept) == kept
    # What Arabic text legitimately carries stays: letters, digits, the directional marks.
    assert set(kept) >= set(text) & set("abملاحظة٣٤\u200e\u200f\u061c")


def test_staff_passwords_are_hashed_with_rfc_9106_parameters_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The suite hashes with argon2-cffi's cheapest parameters (tests/conftest.py); a desk
    whose environment does not say so uses RFC 9106's second recommended set, argon2id."""
    monkeypatch.delenv(accounts.PASSWORD_HASHING_ENV)
    assert accounts.password_hashing() == "rfc9106-low-memory"
    assert accounts.PASSWORD_HASHING["rfc9106-low-memory"] == Parameters(
        type=Type.ID,
        version=19,
        salt_len=16,
        hash_len=32,
        time_cost=3,
        memory_cost=65536,
        parallelism=4,
    )
    password_hash = accounts._hasher().hash("correct horse battery")
    assert password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    monkeypatch.setenv(accounts.PASSWORD_HASHING_ENV, "fast")
    with pytest.raises(accounts.AccountError):
        accounts.password_hashing()


def test_a_strong_hash_is_never_rewritten_weaker_at_sign_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sign-in upgrades a hash to the desk's parameters, never down to the test suite's."""
    database = db.Database(f"sqlite:///{tmp_path / 'desk.db'}")
    db.upgrade(database.engine)
    monkeypatch.delenv(accounts.PASSWORD_HASHING_ENV)
    with database.transaction() as session:
        accounts.add_user(session, "sara.jabbar", accounts.Role.supervisor, "p" * 12, "ar")
    strong = "$argon2id$v=19$m=65536,t=3,p=4$"
    monkeypatch.setenv(accounts.PASSWORD_HASHING_ENV, "test-only-cheapest")
    with database.transaction() as session:
        signed = accounts.authenticate(
            session, "sara.jabbar", "p" * 12, failures=5, lockout=timedelta(minutes=5)
        )
        assert signed.reason is None
        assert signed.user is not None
        assert signed.user.password_hash.startswith(strong)
        accounts.add_user(session, "ali.hassan", accounts.Role.analyst, "q" * 12, "ar")
    monkeypatch.delenv(accounts.PASSWORD_HASHING_ENV)
    with database.transaction() as session:  # and a weak one is made strong on a real desk
        signed = accounts.authenticate(
            session, "ali.hassan", "q" * 12, failures=5, lockout=timedelta(minutes=5)
        )
        assert signed.user is not None
        assert signed.user.password_hash.startswith(strong)
    database.close()
