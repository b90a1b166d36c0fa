"""
Connector definitions: how one kind of agency's extract becomes tokens and flag codes.

A definition is a TOML file in ``connectors/`` (format ``matchhub-connector/1``, documented in
``connectors/README.md``). It names the agency kind, the identifier scheme and column, and for
each flag the agency asserts, the column(s) that feed the catalogue rule's field and how their
values parse. It does *not* hold the rule itself (operator and threshold): the rule belongs to
the flag catalogue, which the operator versions and every party can read, and the connector
fetches it from the broker on every push (`GET /v1/flags`). A threshold copied into a definition
would drift silently from the catalogue; instead, a definition states the rule's ``field`` it
feeds, and `Definition.plan` refuses a rule that reads another field, uses an operator this
connector does not know, or compares a value of the wrong type. Refusing is deliberate: a rule
applied to the wrong column would flag (or clear) thousands of people without any error.

Why raw values stay here: a definition turns each row into a set of flag codes *at the agency*.
Loan amounts, pension statuses and vehicle counts are read, compared and dropped in the
connector's memory; only the token and the flag codes ever leave it.

Every error names the file and the key (``connectors/bank.toml: flags."bank.large_loan".parse:
...``) so that whoever maintains the file can fix it without reading code.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import operator
import re
import tomllib
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, NoReturn

from matchhub.protocol.kinds import PROVIDER_KINDS, AgencyKind
from matchhub.protocol.tokens import Scheme, UnknownScheme, get_scheme
from matchhub.protocol.tokens.normalise import ARABIC_INDIC_DIGITS, EASTERN_ARABIC_INDIC_DIGITS

__all__ = [
    "FORMAT",
    "ROSTER_FIELDS",
    "Combine",
    "CompiledFlag",
    "Definition",
    "DefinitionError",
    "FlagSource",
    "Parse",
    "Plan",
    "Rule",
    "RulesError",
    "Value",
    "default_rules",
    "fold_text",
    "load",
    "parse_boolean",
    "parse_number",
    "rules_from_catalogue",
]

ROSTER_FIELDS = ("beneficiary_id", "household_id", "name", "governorate")
"""The columns a roster's ``[roster]`` table may name, for the ministry's desk."""

FORMAT = "matchhub-connector/1"
"""The ``format`` key of every definition; bump it, never reinterpret it."""

Value = int | Decimal | bool
"""A parsed cell: a number (exact: int, or Decimal when it has a fraction) or a boolean."""

_FLAG_CODE = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z0-9_]{1,60}$")
_FIELD = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_DELIMITERS = frozenset({",", ";", "\t", "|"})
_THOUSANDS = frozenset({",", ".", "'", ""})
_DECIMALS = frozenset({".", ","})


class DefinitionError(ValueError):
    """A definition file is missing, unreadable or malformed. The message names file and key."""


class RulesError(ValueError):
    """The catalogue's rules cannot be applied with this definition (names flag and setting)."""


class Parse(StrEnum):
    """How a cell's text becomes a value."""

    number = "number"  # 50,000,000 / ٥٠٬٠٠٠٬٠٠٠ / 1250000.50
    boolean = "boolean"  # yes/no, 1/0, نعم/لا, true/false (plus the definition's own words)
    one_of = "one_of"  # true when the cell is one of `values` (e.g. an activity type)


class Combine(Enum):
    """How the rows of one person combine when an extract has several rows per person.

    (An `Enum` of strings rather than a `StrEnum`: ``count`` would shadow ``str.count``.)"""

    sum = "sum"
    max = "max"
    min = "min"
    any = "any"
    all = "all"
    count = "count"  # the number of rows whose (boolean) value is true


_NUMBER_COMBINES = frozenset({Combine.sum, Combine.max, Combine.min})
_BOOLEAN_COMBINES = frozenset({Combine.any, Combine.all, Combine.count})

# --- text folding, shared by header matching and value vocabularies ------------------------------

_FORMAT_CHARACTERS: dict[int, str | None] = dict.fromkeys(
    (
        0x00AD,  # soft hyphen
        0x061C,  # Arabic letter mark
        0x0640,  # tatweel (kashida), a stretching stroke
        *range(0x200B, 0x2010),  # zero-width spaces and joiners, LRM, RLM
        *range(0x202A, 0x202F),  # bidi embeddings and overrides
        0x2060,  # word joiner
        *range(0x2066, 0x206A),  # bidi isolates
        0xFEFF,  # byte order mark
    )
)
_ARABIC_FOLD = {
    **{ord(ch): str(d) for d, ch in enumerate(ARABIC_INDIC_DIGITS)},
    **{ord(ch): str(d) for d, ch in enumerate(EASTERN_ARABIC_INDIC_DIGITS)},
    **dict.fromkeys(range(0x064B, 0x0653)),  # harakat (short-vowel marks)
    ord("أ"): "ا",
    ord("إ"): "ا",
    ord("آ"): "ا",
    ord("ى"): "ي",
    ord("ة"): "ه",
    **_FORMAT_CHARACTERS,
}


def fold_text(text: str) -> str:
    """
    The comparison form of a header or a vocabulary word: NFKC, Arabic-Indic digits to ASCII,
    invisible format characters and tatweel removed, light Arabic orthographic folding (أ إ آ→ا,
    ى→ي, ة→ه, short vowels dropped), whitespace collapsed, case folded.

    Spreadsheets and hand-typed registries spell the same word several ways ("ملغى"/"ملغي",
    a trailing right-to-left mark after a header); folding both sides lets a definition name a
    word once. It is used for headers and words only, never for identifiers (those follow
    TOKEN-SPEC.md exactly).
    """
    if text.isascii():
        return " ".join(text.split()).casefold()
    folded = unicodedata.normalize("NFKC", text).translate(_ARABIC_FOLD)
    return " ".join(folded.split()).casefold()


DEFAULT_TRUE = frozenset(fold_text(w) for w in ("yes", "y", "true", "t", "1", "نعم", "صح"))
DEFAULT_FALSE = frozenset(fold_text(w) for w in ("no", "n", "false", "f", "0", "لا", "خطأ"))
MISSING_WORDS = frozenset(fold_text(w) for w in ("null", "none", "n/a", "na", "-", "—"))
"""Cells that mean "no value" in database and spreadsheet exports; treated as empty."""


def is_missing(cell: str) -> bool:
    """Whether a cell holds no value: empty, blank, or a "no value" word such as NULL."""
    if not cell or cell.isspace():
        return True
    return len(cell) <= 4 and fold_text(cell) in MISSING_WORDS


# --- value parsers ------------------------------------------------------------------------------

_SPACES = (
    *range(0x0009, 0x000E),
    0x0020,
    0x0085,
    0x00A0,
    0x1680,
    *range(0x2000, 0x200B),
    0x2028,
    0x2029,
    0x202F,
    0x205F,
    0x3000,
)
_NUMBER_TABLE = {
    **{ord(ch): str(d) for d, ch in enumerate(ARABIC_INDIC_DIGITS)},
    **{ord(ch): str(d) for d, ch in enumerate(EASTERN_ARABIC_INDIC_DIGITS)},
    **dict.fromkeys(_SPACES),  # "50 000 000", and the no-break spaces spreadsheets insert
    **_FORMAT_CHARACTERS,
}
_ARABIC_THOUSANDS = "\u066c"  # ARABIC THOUSANDS SEPARATOR
_ARABIC_DECIMAL = "\u066b"  # ARABIC DECIMAL SEPARATOR


@functools.cache
def _number_pattern(thousands: str, decimal: str) -> re.Pattern[str]:
    grouped = rf"\d{{1,3}}(?:{re.escape(thousands)}\d{{3}})+|" if thousands else ""
    return re.compile(rf"[-+]?(?:{grouped}\d+)(?:{re.escape(decimal)}\d+)?", re.ASCII)


def parse_number(text: str, thousands: str = ",", decimal: str = ".") -> int | Decimal:
    """
    Parse an amount or count: ASCII, Arabic-Indic or Eastern Arabic-Indic digits; spaces and
    the thousands separator as grouping (groups of three, checked, so "1,5" is refused rather
    than read as 15); the Arabic separators U+066C and U+066B always accepted. Exact: an int,
    or a Decimal when there is a fraction. Raises ValueError (without quoting the text).
    """
    if text.isascii() and text.isdigit():
        return int(text)
    cleaned = unicodedata.normalize("NFKC", text).translate(_NUMBER_TABLE)
    if _ARABIC_THOUSANDS in cleaned or _ARABIC_DECIMAL in cleaned:
        thousands = thousands or ","
        cleaned = cleaned.replace(_ARABIC_THOUSANDS, thousands).replace(_ARABIC_DECIMAL, decimal)
    if not _number_pattern(thousands, decimal).fullmatch(cleaned):
        raise ValueError("not a number")
    if thousands:
        cleaned = cleaned.replace(thousands, "")
    if decimal in cleaned:
        try:
            return Decimal(cleaned.replace(decimal, "."))
        except InvalidOperation:  # pragma: no cover (the pattern admits only valid decimals)
            raise ValueError("not a number") from None
    return int(cleaned)


def parse_boolean(text: str, true: frozenset[str], false: frozenset[str]) -> bool:
    """True or False from a word of `true` or `false` (folded forms); ValueError otherwise."""
    word = fold_text(text)
    if word in true:
        return True
    if word in false:
        return False
    raise ValueError("not a recognised yes/no value")


# --- the definition ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlagSource:
    """Where one flag's rule field comes from in the extract, and how it parses."""

    code: str
    field: str
    columns: tuple[str, ...]
    parse: Parse
    combine: Combine | None
    true_values: frozenset[str] = DEFAULT_TRUE
    false_values: frozenset[str] = DEFAULT_FALSE
    values: frozenset[str] = frozenset()
    thousands: str = ","
    decimal: str = "."

    @property
    def value_type(self) -> str:
        """'number' or 'boolean': what the rule compares, after combining a person's rows."""
        if self.combine is Combine.count or self.parse is Parse.number:
            return "number"
        return "boolean"


@dataclass(frozen=True, slots=True)
class Definition:
    """A loaded, validated connector definition."""

    path: Path
    sha256: str
    kind: AgencyKind
    description: str
    scheme: Scheme
    id_column: str
    strip_prefixes: tuple[str, ...]
    delimiter: str
    many_rows: bool
    flags: tuple[FlagSource, ...]
    roster_columns: Mapping[str, str] = field(default_factory=dict)
    """A roster's ``[roster]`` table: which columns hold the ministry's own beneficiary ID,
    household ID, name and governorate (`ROSTER_FIELDS`). Only the ministry's desk reads them,
    to turn results back into its own beneficiaries; the connector sends none of them."""

    @property
    def roster(self) -> bool:
        """A consumer's roster (no flags) rather than a provider's flag snapshot."""
        return self.kind is AgencyKind.welfare

    @property
    def flag_codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.flags)

    def plan(self, rules: Mapping[str, Rule]) -> Plan:
        """
        Bind each flag to the catalogue's current rule. Raises `RulesError` if a rule is
        missing, reads a field this definition does not feed, uses an operator this connector
        does not know, or compares a value of the wrong type.
        """
        compiled = []
        for bit, source in enumerate(self.flags):
            rule = rules.get(source.code)
            if rule is None:
                raise RulesError(
                    f"flag {source.code}: the catalogue holds no rule for it, or this agency "
                    f"may not assert it ({self.path})"
                )
            if rule.field != source.field:
                raise RulesError(
                    f"flag {source.code}: the catalogue's rule (version {rule.version}) reads "
                    f"field {rule.field!r}, but {self.path} feeds {source.field!r}; update "
                    "the definition's columns for the new rule"
                )
            compiled.append(CompiledFlag(source, rule, 1 << bit, rule.predicate(source)))
        return Plan(self, tuple(compiled))


@dataclass(frozen=True, slots=True)
class CompiledFlag:
    """A flag's source bound to its rule: ``predicate(value)`` says whether the flag holds."""

    source: FlagSource
    rule: Rule
    bit: int
    predicate: Callable[[Value], bool]


@dataclass(frozen=True, slots=True)
class Plan:
    """A definition with the rules it applies: everything needed to evaluate an extract."""

    definition: Definition
    flags: tuple[CompiledFlag, ...]

    def rules_fingerprint(self) -> dict[str, Any]:
        """The rules as applied, for the report and the resume digest."""
        return {f.source.code: {"version": f.rule.version, **f.rule.params} for f in self.flags}


# --- rules --------------------------------------------------------------------------------------

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "gte": operator.ge,
    "gt": operator.gt,
    "lte": operator.le,
    "lt": operator.lt,
}
_TRUTHS = {"is_true": True, "is_false": False}


@dataclass(frozen=True, slots=True)
class Rule:
    """A catalogue rule: ``{"op": "gte", "field": "...", "threshold": N}`` or ``is_true``."""

    code: str
    op: str
    field: str
    threshold: int | Decimal | None
    version: int
    params: Mapping[str, Any]

    @classmethod
    def from_params(cls, code: str, params: Mapping[str, Any], version: int = 1) -> Rule:
        op, field = params.get("op"), params.get("field")
        if not isinstance(op, str) or op not in {*_COMPARISONS, *_TRUTHS}:
            raise RulesError(
                f"flag {code}: rule operator {op!r} is not one this connector knows "
                f"({', '.join([*_COMPARISONS, *_TRUTHS])}); upgrade the connector"
            )
        if not isinstance(field, str) or not field:
            raise RulesError(f"flag {code}: the rule names no field")
        threshold: int | Decimal | None = None
        if op in _COMPARISONS:
            raw = params.get("threshold")
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise RulesError(f"flag {code}: rule {op!r} needs a numeric threshold")
            if isinstance(raw, float) and not math.isfinite(raw):
                raise RulesError(f"flag {code}: the rule's threshold is not finite")
            threshold = raw if isinstance(raw, int) else Decimal(repr(raw))
        return cls(code, op, field, threshold, version, dict(params))

    def predicate(self, source: FlagSource) -> Callable[[Value], bool]:
        """The test of one person's (combined) value, checked against the source's type."""
        if self.op in _TRUTHS:
            if source.value_type != "boolean":
                raise RulesError(
                    f"flag {self.code}: rule {self.op!r} needs a yes/no field, but the "
                    f"definition parses {source.field!r} as a number"
                )
            wanted = _TRUTHS[self.op]
            return lambda value: value is wanted
        if source.value_type != "number":
            raise RulesError(
                f"flag {self.code}: rule {self.op!r} compares a number, but the definition "
                f'parses {source.field!r} as yes/no (use parse = "number" or combine = '
                '"count")'
            )
        compare, threshold = _COMPARISONS[self.op], self.threshold
        return lambda value: bool(compare(value, threshold))


def rules_from_catalogue(document: Mapping[str, Any]) -> dict[str, Rule]:
    """The rules in a `GET /v1/flags` answer (or a file saved from one)."""
    flags = document.get("flags")
    if not isinstance(flags, list):
        raise RulesError("not a flag catalogue: no 'flags' list")
    rules: dict[str, Rule] = {}
    for item in flags:
        if not isinstance(item, dict) or not isinstance(item.get("code"), str):
            raise RulesError("not a flag catalogue: a flag without a code")
        rule = item.get("rule")
        params = rule.get("params") if isinstance(rule, dict) else None
        if not isinstance(params, dict):
            raise RulesError(f"flag {item['code']}: no rule parameters")
        version = item.get("version", 1)
        rules[item["code"]] = Rule.from_params(
            item["code"], params, version if isinstance(version, int) else 1
        )
    return rules


def default_rules() -> dict[str, Rule]:
    """The rules ``matchhub init`` seeds (`matchhub.protocol.catalogue`): for offline dry runs."""
    from matchhub.protocol.catalogue import FLAGS  # noqa: PLC0415 (only offline runs need it)

    return {spec.code: Rule.from_params(spec.code, spec.rule_params) for spec in FLAGS}


# --- loading -------------------------------------------------------------------------------------


class _Reader:
    """Typed access to a TOML table, with errors that name the file and the key path."""

    def __init__(self, path: Path, table: Mapping[str, Any], prefix: str = "") -> None:
        self.path, self.table, self.prefix = path, table, prefix
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        """The dotted key path as TOML writes it: ``flags."bank.large_loan".parse``."""
        return f"{self.prefix}{name if _BARE_KEY.match(name) else json.dumps(name)}"

    def error(self, name: str, message: str) -> DefinitionError:
        return DefinitionError(f"{self.path}: {self.key(name)}: {message}")

    def get(self, name: str, kind: type | tuple[type, ...], *, required: bool = False) -> Any:
        self.used.add(name)
        if name not in self.table:
            if required:
                raise self.error(name, "missing (required)")
            return None
        value = self.table[name]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.error(name, f"expected {_type_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise self.error(name, f"expected {_type_name(kind)}, got {type(value).__name__}")
        return value

    def text(self, name: str, *, required: bool = False, default: str = "") -> str:
        value = self.get(name, str, required=required)
        if value is None:
            return default
        if required and not value.strip():
            raise self.error(name, "must not be empty")
        return str(value)

    def words(self, name: str) -> tuple[str, ...] | None:
        value = self.get(name, list)
        if value is None:
            return None
        if not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.error(name, "expected a non-empty list of non-empty strings")
        return tuple(value)

    def table_of(self, name: str) -> _Reader | None:
        value = self.get(name, dict)
        return None if value is None else _Reader(self.path, value, f"{self.key(name)}.")

    def choice(self, name: str, options: Sequence[str], default: str | None = None) -> str | None:
        value = self.get(name, str)
        if value is None:
            return default
        if value not in options:
            raise self.error(name, f"must be one of {', '.join(map(repr, options))}")
        return str(value)

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key (a typo?)")


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", list: "a list", dict: "a table", bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def load(path: str | Path) -> Definition:
    """Read and validate a definition. Raises `DefinitionError` naming the file and the key."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot read the definition: {exc.strerror}") from None
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise DefinitionError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError(f"{path}: not valid TOML: {exc}") from None
    top = _Reader(path, document)
    if top.get("format", str, required=True) != FORMAT:
        raise top.error("format", f"must be {FORMAT!r}")
    kind_name = top.choice("kind", [k.value for k in AgencyKind if k.has_connector])
    if kind_name is None:
        raise top.error("kind", "missing (required)")
    kind = AgencyKind(kind_name)
    description = top.text("description")
    many = top.choice("rows_per_person", ["one", "many"], "one") == "many"
    scheme, id_column, prefixes = _id_section(top)
    delimiter = ","
    extract = top.table_of("extract")
    if extract is not None:
        delimiter = extract.choice("delimiter", sorted(_DELIMITERS), ",") or ","
        extract.finish()
    flags = _flags_section(top, kind, many)
    roster_columns = _roster_section(top, kind)
    top.finish()
    return Definition(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        kind=kind,
        description=description,
        scheme=scheme,
        id_column=id_column,
        strip_prefixes=prefixes,
        delimiter=delimiter,
        many_rows=many,
        flags=flags,
        roster_columns=roster_columns,
    )


def _roster_section(top: _Reader, kind: AgencyKind) -> dict[str, str]:
    section = top.table_of("roster")
    if section is None:
        return {}
    if kind is not AgencyKind.welfare:
        raise top.error("roster", "only a welfare definition (a roster) names roster columns")
    columns = {name: section.text(name) for name in ROSTER_FIELDS if name in section.table}
    if any(not column.strip() for column in columns.values()):
        raise section.error(next(n for n, c in columns.items() if not c.strip()), "empty")
    section.finish()
    return columns


def _id_section(top: _Reader) -> tuple[Scheme, str, tuple[str, ...]]:
    section = top.table_of("id")
    if section is None:
        raise top.error("id", "missing (required): [id] with scheme and column")
    try:
        scheme = get_scheme(section.text("scheme", required=True))
    except UnknownScheme as exc:
        raise section.error("scheme", str(exc)) from None
    column = section.text("column", required=True)
    prefixes = section.words("strip_prefix") or ()
    section.finish()
    return scheme, column, prefixes


def _flags_section(top: _Reader, kind: AgencyKind, many: bool) -> tuple[FlagSource, ...]:
    section = top.table_of("flags")
    if kind not in PROVIDER_KINDS:
        if section is not None:
            raise top.error("flags", f"a {kind.value} definition (a roster) asserts no flags")
        return ()
    if section is None or not section.table:
        raise top.error("flags", "a provider definition asserts at least one flag")
    sources = []
    for code in section.table:
        if not _FLAG_CODE.match(code) or not code.startswith(f"{kind.value}."):
            raise section.error(
                code,
                f"a {kind.value} flag code looks like '{kind.value}.name', quoted in the "
                f'table name: [flags."{kind.value}.name"]',
            )
        entry = section.table_of(code)
        if entry is None:  # pragma: no cover (table_of only returns None for absent keys)
            continue
        sources.append(_flag_source(entry, code, many))
    section.finish()
    return tuple(sources)


def _flag_source(entry: _Reader, code: str, many: bool) -> FlagSource:
    field = entry.text("field", required=True)
    if not _FIELD.match(field):
        raise entry.error("field", "a field name is lowercase letters, digits and '_'")
    column, columns = entry.get("column", str), entry.words("columns")
    if (column is None) == (columns is None):
        raise entry.error("column", "give exactly one of 'column' or 'columns'")
    names = (column,) if column is not None else tuple(columns or ())
    if not all(name.strip() for name in names):
        raise entry.error("column", "must not be empty")
    parse = Parse(entry.choice("parse", [p.value for p in Parse]) or _missing(entry, "parse"))
    combine_name = entry.choice("combine", [c.value for c in Combine])
    if many and combine_name is None:
        raise entry.error(
            "combine", 'required when rows_per_person = "many": how one person\'s rows combine'
        )
    if not many and combine_name is not None:
        raise entry.error("combine", 'only for rows_per_person = "many"')
    combine = Combine(combine_name) if combine_name else None
    if combine is not None:
        allowed = _NUMBER_COMBINES if parse is Parse.number else _BOOLEAN_COMBINES
        if combine not in allowed:
            raise entry.error(
                "combine",
                f"{combine.value!r} does not combine {parse.value} values; use one of "
                f"{', '.join(sorted(c.value for c in allowed))}",
            )
    true_words, false_words = entry.words("true_values"), entry.words("false_values")
    values = entry.words("values")
    thousands = entry.choice("thousands_separator", sorted(_THOUSANDS), ",")
    decimal = entry.choice("decimal_separator", sorted(_DECIMALS), ".")
    if parse is not Parse.boolean and (true_words or false_words):
        raise entry.error("true_values", 'only for parse = "boolean"')
    if (parse is Parse.one_of) != (values is not None):
        raise entry.error("values", 'required for parse = "one_of", and only there')
    if parse is not Parse.number and ("thousands_separator" in entry.table):
        raise entry.error("thousands_separator", 'only for parse = "number"')
    if thousands == decimal:
        raise entry.error("decimal_separator", "must differ from thousands_separator")
    true_set = DEFAULT_TRUE | {fold_text(w) for w in true_words or ()}
    false_set = DEFAULT_FALSE | {fold_text(w) for w in false_words or ()}
    if true_set & false_set:
        raise entry.error("true_values", "a word is both a true and a false value")
    entry.finish()
    return FlagSource(
        code=code,
        field=field,
        columns=names,
        parse=parse,
        combine=combine,
        true_values=true_set,
        false_values=false_set,
        values=frozenset(fold_text(v) for v in values or ()),
        thousands=thousands or "",
        decimal=decimal or ".",
    )


def _missing(reader: _Reader, name: str) -> NoReturn:
    raise reader.error(name, "missing (required)")
