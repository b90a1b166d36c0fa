"""Connector definitions: every shipped one loads and fits the catalogue; broken ones are refused
with the file and key named; values parse the way Iraqi extracts write them."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from matchhub.agency.connector.definition import (
    DefinitionError,
    Rule,
    RulesError,
    default_rules,
    fold_text,
    load,
    parse_boolean,
    parse_number,
    rules_from_catalogue,
)
from matchhub.protocol.catalogue import FLAGS
from matchhub.protocol.kinds import PROVIDER_KINDS, AgencyKind
from tests.connect.conftest import CONNECTORS

DEFINITIONS = sorted(CONNECTORS.glob("*.toml"))
TRUE, FALSE = frozenset({"yes", "1"}), frozenset({"no", "0"})


def test_there_is_one_definition_per_agency_kind() -> None:
    kinds = [load(path).kind for path in DEFINITIONS]
    assert sorted(kinds) == sorted(k for k in AgencyKind if k.has_connector)
    assert all(path.stem == load(path).kind.value for path in DEFINITIONS)


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.stem)
def test_a_definition_loads_and_its_flags_are_the_catalogues(path: Path) -> None:
    definition = load(path)
    catalogue = {spec.code: spec for spec in FLAGS}
    assert definition.scheme.name == "iq.ncn"
    assert definition.id_column
    for source in definition.flags:
        spec = catalogue[source.code]
        assert spec.asserted_by == definition.kind.value
        assert source.field == spec.rule_params["field"]
    if definition.kind in PROVIDER_KINDS:
        # Every flag its kind may assert is covered, so a push replaces all of them together.
        assert set(definition.flag_codes) == {
            code for code, spec in catalogue.items() if spec.asserted_by == definition.kind
        }
    else:
        assert definition.roster
        assert definition.flags == ()
    plan = definition.plan(default_rules())  # operators and value types fit the rules
    assert [f.source.code for f in plan.flags] == list(definition.flag_codes)


HEAD = 'format = "matchhub-connector/1"\nkind = "bank"\n'
ID = '[id]\nscheme = "iq.ncn"\ncolumn = "customer_nid"\n'
LOAN = '[flags."bank.large_loan"]\nfield = "outstanding_loans_iqd"\ncolumn = "balance"\n'


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("format = [", ("not valid TOML",)),
        ('kind = "bank"\n', ("format: missing (required)",)),
        ('format = "matchhub-connector/2"\n', ("format: must be 'matchhub-connector/1'",)),
        ('format = "matchhub-connector/1"\nkind = "bankk"\n', ("kind: must be one of",)),
        ('format = "matchhub-connector/1"\nkind = "auditor"\n', ("kind: must be one of",)),
        (HEAD + LOAN + 'parse = "number"\n', ("id: missing",)),
        (HEAD + '[id]\nscheme = "iq.ncn"\n', ("id.column: missing (required)",)),
        (HEAD + '[id]\nscheme = "xx.id"\ncolumn = "a"\n', ("id.scheme: unknown identifier",)),
        (HEAD + ID + 'colour = "blue"\n', ("id.colour: unknown key",)),
        (HEAD + ID, ("flags: a provider definition asserts at least one flag",)),
        (
            HEAD + ID + LOAN + 'parse = "number"\nthresold = 5\n',
            ('flags."bank.large_loan".thresold: unknown key (a typo?)',),
        ),
        (
            HEAD + ID + '[flags.bank.large_loan]\nfield = "x"\n',
            ("flags.bank:", 'quoted in the table name: [flags."bank.name"]'),
        ),
        (
            HEAD + ID + LOAN.replace("bank.large_loan", "pension.recipient") + 'parse = "boolean"',
            ("a bank flag code looks like 'bank.name'",),
        ),
        (HEAD + ID + LOAN, ('flags."bank.large_loan".parse: missing',)),
        (HEAD + ID + LOAN + 'parse = "numeric"\n', (".parse: must be one of",)),
        (
            HEAD + ID + LOAN + 'parse = "number"\ncolumns = ["a", "b"]\n',
            (".column: give exactly one of 'column' or 'columns'",),
        ),
        (HEAD + ID + LOAN + 'parse = "number"\ncombine = "sum"\n', (".combine: only for",)),
        (
            HEAD + 'rows_per_person = "many"\n' + ID + LOAN + 'parse = "number"\n',
            (".combine: required when rows_per_person",),
        ),
        (
            HEAD + 'rows_per_person = "many"\n' + ID + LOAN + 'parse = "number"\ncombine = "any"\n',
            (".combine: 'any' does not combine number values",),
        ),
        (
            HEAD + ID + LOAN + 'parse = "number"\ntrue_values = ["نعم"]\n',
            ('.true_values: only for parse = "boolean"',),
        ),
        (HEAD + ID + LOAN + 'parse = "one_of"\n', ('.values: required for parse = "one_of"',)),
        (
            HEAD + ID + LOAN + 'parse = "boolean"\ntrue_values = ["لا"]\n',
            (".true_values: a word is both a true and a false value",),
        ),
        (
            HEAD + ID + LOAN + 'parse = "number"\nthousands_separator = "."\n',
            (".decimal_separator: must differ from thousands_separator",),
        ),
        (HEAD + ID + LOAN + "parse = 1\n", (".parse: expected a string, got int",)),
        (
            'format = "matchhub-connector/1"\nkind = "welfare"\n' + ID + LOAN + 'parse = "number"',
            ("flags: a welfare definition (a roster) asserts no flags",),
        ),
    ],
)
def test_a_broken_definition_names_its_file_and_key(
    tmp_path: Path, text: str, fragments: tuple[str, ...]
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, message


def test_a_missing_or_binary_definition_is_named(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read the definition"):
        load(tmp_path / "nowhere.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DefinitionError, match="not UTF-8"):
        load(binary)


def _rule(params: dict[str, object]) -> dict[str, Rule]:
    return {"bank.large_loan": Rule.from_params("bank.large_loan", params, version=3)}


def test_rules_that_do_not_fit_the_definition_are_refused() -> None:
    bank = load(CONNECTORS / "bank.toml")
    pension = load(CONNECTORS / "pension.toml")
    field = "outstanding_loans_iqd"
    with pytest.raises(RulesError, match="reads field 'total_debt'"):
        bank.plan(_rule({"op": "gte", "field": "total_debt", "threshold": 1}))
    with pytest.raises(RulesError, match="needs a yes/no field"):
        bank.plan(_rule({"op": "is_true", "field": field}))
    with pytest.raises(RulesError, match="operator 'between' is not one this connector knows"):
        bank.plan(_rule({"op": "between", "field": field}))
    with pytest.raises(RulesError, match="needs a numeric threshold"):
        bank.plan(_rule({"op": "gte", "field": field, "threshold": "50000000"}))
    with pytest.raises(RulesError, match="no rule for it"):
        bank.plan({})
    counted = {"op": "gte", "field": "pension_active", "threshold": 1}
    with pytest.raises(RulesError, match="compares a number"):
        pension.plan({"pension.recipient": Rule.from_params("pension.recipient", counted)})
    with pytest.raises(RulesError, match="not a flag catalogue"):
        rules_from_catalogue({"flags": "all"})
    # A float threshold compares exactly, as a decimal.
    plan = bank.plan(_rule({"op": "gt", "field": field, "threshold": 0.5}))
    assert plan.flags[0].predicate(Decimal("0.51"))
    assert not plan.flags[0].predicate(Decimal("0.50"))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("50000000", 50_000_000),
        ("50,000,000", 50_000_000),
        ("٥٠٬٠٠٠٬٠٠٠", 50_000_000),  # Arabic-Indic digits, Arabic thousands separator
        ("۵۰,۰۰۰,۰۰۰", 50_000_000),  # Eastern Arabic-Indic digits
        ("50 000 000", 50_000_000),
        ("50\u00a0000\u00a0000", 50_000_000),  # no-break spaces
        ("\u200f50,000,000 ", 50_000_000),  # a right-to-left mark and a trailing space
        ("12,500,000.50", Decimal("12500000.50")),
        ("١٢٫٥", Decimal("12.5")),  # the Arabic decimal separator
        ("-1,000", -1000),
        ("007", 7),
    ],
)
def test_numbers_parse_as_extracts_write_them(text: str, value: int | Decimal) -> None:
    parsed = parse_number(text)
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize("text", ["1,5", "12,34,567", "1.2.3", "five", "", "1e6", "IQD 5", "--1"])
def test_malformed_numbers_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a number"):
        parse_number(text)


def test_european_grouping_is_a_definition_choice() -> None:
    assert parse_number("50.000.000,5", thousands=".", decimal=",") == Decimal("50000000.5")
    assert parse_number("50000000", thousands="") == 50_000_000
    with pytest.raises(ValueError, match="not a number"):
        parse_number("50,000,000", thousands="")


@pytest.mark.parametrize(
    ("text", "value"),
    [("yes", True), (" YES ", True), ("1", True), ("١", True), ("no", False), ("0", False)],
)
def test_booleans(text: str, value: bool) -> None:
    assert parse_boolean(text, TRUE, FALSE) is value


def test_an_unknown_boolean_word_is_refused() -> None:
    with pytest.raises(ValueError, match="not a recognised"):
        parse_boolean("maybe", TRUE, FALSE)


def test_text_folding_forgives_spelling_not_meaning() -> None:
    assert fold_text("مولدة أهلية") == fold_text("مولدة اهلية")
    assert fold_text("ملغى") == fold_text("ملغي")
    assert fold_text("يتقاضى راتباً") == fold_text("يتقاضى راتبا")
    assert fold_text("\u200fرقم البطاقة  الوطنية ") == fold_text("رقم البطاقة الوطنية")
    assert fold_text("Customer_NID") == "customer_nid"
    assert fold_text("محطة وقود") != fold_text("محطة غاز")


def test_a_roster_names_the_desks_columns_and_only_a_roster_may(tmp_path: Path) -> None:
    welfare = load(CONNECTORS / "welfare.toml")
    assert set(welfare.roster_columns) == {"beneficiary_id", "household_id", "name", "governorate"}
    roster = 'format = "matchhub-connector/1"\nkind = "welfare"\n' + ID
    cases = {
        HEAD + ID + LOAN + 'parse = "number"\n[roster]\nname = "x"\n': "only a welfare definition",
        roster + '[roster]\nnme = "x"\n': "roster.nme: unknown key",
        roster + '[roster]\nname = " "\n': "roster.name: empty",
    }
    for text, message in cases.items():
        path = tmp_path / "d.toml"
        path.write_text(text)
        with pytest.raises(DefinitionError, match=message):
            load(path)
    path.write_text(roster)
    assert load(path).roster_columns == {}
