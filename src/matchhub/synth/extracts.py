"""
Each agency's extract of the synthetic population, as the agency would export it, and the ground
truth kept aside.

Every writer produces one CSV file with the headers its definition in ``connectors/`` names
(Arabic headers for the ministries, English for the bank and the universities), realistic
proportions, and deliberately messy rows:

- IDs spelled with Arabic-Indic digits, Eastern Arabic-Indic digits, spaces, dashes, padding or a
  stray right-to-left mark: valid, and the same person once normalised (TOKEN-SPEC.md);
- a few rows whose ID is invalid (11 or 13 digits, a placeholder, "1.23457E+11", a comma-grouped
  number, text, an empty cell): rejected as ``invalid_id``;
- in one-row-per-person extracts, a few repeated rows (re-spelled IDs): rejected as
  ``duplicate``;
- a few rows with the rule's cell empty or unreadable: rejected as ``missing_field`` or
  ``invalid_value``.

The junk rows are *extra* rows: the ground truth is what the rules of the flag catalogue
(`matchhub.protocol.catalogue`) imply over the valid rows, and each writer also records how many
rows of each kind a connector must reject. The truth is computed here from the values drawn,
independently of the connector's own parsing, so a test comparing the two checks both.

Amounts, statuses and names are drawn from seeded generators (`random.Random`, one stream per
agency, so adding an agency never changes the others' data).
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from matchhub.protocol.catalogue import FLAGS
from matchhub.protocol.tokens import InvalidIdentifier, normalise
from matchhub.synth.population import REFERENCE_YEAR, ROLES_AR, Person

__all__ = [
    "FLAG_BITS",
    "FLAG_CODES",
    "WRITERS",
    "ExtractWriter",
    "flags_of",
    "generate",
]

FLAG_CODES: tuple[str, ...] = tuple(spec.code for spec in FLAGS)
FLAG_BITS: dict[str, int] = {code: 1 << i for i, code in enumerate(FLAG_CODES)}
_RULES: dict[str, dict[str, Any]] = {spec.code: spec.rule_params for spec in FLAGS}


def flags_of(mask: int) -> list[str]:
    """Flag codes of a truth mask, in catalogue order."""
    return [code for code, bit in FLAG_BITS.items() if mask & bit]


def _holds(code: str, value: int | Decimal | bool) -> int:
    """The flag's bit if the catalogue's default rule holds for `value`, else 0."""
    params = _RULES[code]
    if params["op"] == "gte":
        held = not isinstance(value, bool) and value >= params["threshold"]
    elif params["op"] == "is_true":
        held = value is True
    else:  # pragma: no cover (the defaults use only these two)
        raise ValueError(f"the generator does not know rule op {params['op']!r}")
    return FLAG_BITS[code] if held else 0


# --- spellings -------------------------------------------------------------------------------

_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_EASTERN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def _grouped(digits: str, separator: str) -> str:
    return separator.join((digits[:4], digits[4:8], digits[8:]))


_MESSY: tuple[tuple[float, Callable[[str], str]], ...] = (
    # (cumulative share, spelling); the Arabic-Indic share is per agency and comes first
    (0.005, lambda d: d.translate(_EASTERN)),
    (0.015, lambda d: _grouped(d, " ")),
    (0.025, lambda d: _grouped(d, "-")),
    (0.030, lambda d: f" {d} "),
    (0.033, lambda d: "\u200f" + d),  # a right-to-left mark pasted from an Arabic spreadsheet
)


def _messy_id(national_id: str, rng: random.Random, arabic: float) -> str:
    """A valid spelling of `national_id`: plain most of the time, otherwise one of the ways
    extracts really spell it. Every one normalises back to `national_id`."""
    r = rng.random()
    if r < arabic:
        return national_id.translate(_ARABIC_INDIC)
    r -= arabic
    for share, spelling in _MESSY:
        if r < share:
            return spelling(national_id)
    return national_id


def _invalid_id(rng: random.Random) -> str:
    """An ID cell a connector must refuse (TOKEN-SPEC.md section 3)."""
    digits = f"{rng.randrange(10**11, 10**12)}"
    choice = rng.randrange(8)
    candidates = (
        digits[1:],  # a spreadsheet dropped the leading digit
        digits + str(rng.randrange(10)),  # 13 digits
        str(rng.randrange(10)) * 12,  # a placeholder for "unknown"
        f"{int(digits) / 1e11:.5f}E+11",  # the ID was formatted as a number
        f"{int(digits):,}",  # comma-grouped
        "",  # empty
        "غير متوفر",  # "not available"
        "IQ-" + digits,  # a prefix the definition does not strip
    )
    value = candidates[choice]
    try:
        normalise(value, "iq.ncn")
    except InvalidIdentifier:
        return value
    raise AssertionError("an invalid ID spelling normalised")  # pragma: no cover


def _amount(value: int | Decimal, rng: random.Random) -> str:
    """An amount as exports write it: grouped, plain, in Arabic-Indic digits, or with .00."""
    r = rng.random()
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if r < 0.65:
        return f"{value:,}"
    if r < 0.80:
        return str(value)
    if r < 0.92:
        return f"{value:,}".translate(_ARABIC_INDIC).replace(",", "\u066c")
    return f"{value:,}.00"


# --- the writers ---------------------------------------------------------------------------------


class ExtractWriter:
    """One agency's extract file. Subclasses say who appears, with which rows and values."""

    kind: ClassVar[str]
    header: ClassVar[tuple[str, ...]]
    id_column: ClassVar[str]
    rule_columns: ClassVar[tuple[str, ...]] = ()
    bad_values: ClassVar[tuple[str, ...]] = ()
    many: ClassVar[bool] = False
    arabic_digits: ClassVar[float] = 0.03
    encoding: ClassVar[str] = "utf-8"
    line_end: ClassVar[str] = "\n"
    invalid_rate: ClassVar[float] = 0.003
    duplicate_rate: ClassVar[float] = 0.002
    missing_rate: ClassVar[float] = 0.001
    bad_value_rate: ClassVar[float] = 0.0008

    def __init__(self, folder: Path, seed: int) -> None:
        self.path = folder / f"{self.kind}.csv"
        self.file = self.path.open("w", encoding=self.encoding, newline="", buffering=1 << 20)
        self.csv = csv.writer(self.file, lineterminator=self.line_end)
        self.csv.writerow(self.header)
        self.rng = random.Random(f"matchhub-synth/{seed}/{self.kind}")  # noqa: S311 (synthetic data)
        self.id_index = self.header.index(self.id_column)
        self.rule_indices = tuple(self.header.index(c) for c in self.rule_columns)
        self.rows = 0
        self.people = 0
        self.rejected: Counter[str] = Counter()
        self.flagged: Counter[str] = Counter()
        self._scatter: list[list[str]] = []
        self._duplicates: list[list[str]] = []
        self._last: Person | None = None
        self._first_row: list[str] | None = None
        self.serial = 0

    # subclass hooks ----------------------------------------------------------------------------

    def rows_for(self, person: Person) -> tuple[list[list[str]], int]:
        """The person's valid rows (none if they are not in this extract) and their truth bits."""
        raise NotImplementedError

    def sample_row(self, person: Person) -> list[str]:
        """One plausible row for `person`, used as the body of a junk row."""
        raise NotImplementedError

    # the common part ---------------------------------------------------------------------------

    def spell(self, person: Person) -> str:
        return _messy_id(person.national_id, self.rng, self.arabic_digits)

    def add(self, person: Person) -> int:
        """Write the person's rows (and now and then a junk row); return their truth bits."""
        rows, bits = self.rows_for(person)
        if not rows:
            return 0
        self.people += 1
        self._last = person
        if self._first_row is None:
            self._first_row = rows[0]
        for row in rows:
            self._write(row)
        for code in flags_of(bits):
            self.flagged[code] += 1
        # Junk rows come at per-row rates; each is an extra row about this person.
        rng, n = self.rng, len(rows)
        if not self.many and rng.random() < self.duplicate_rate:
            self._duplicate(person, rows[0])
        if rng.random() < self.invalid_rate * n:
            self._junk_invalid_id(person)
        if self.rule_indices:
            if rng.random() < self.missing_rate * n:
                self._junk_missing(person)
            if self.bad_values and rng.random() < self.bad_value_rate * n:
                self._junk_bad_value(person)
        if len(self._duplicates) >= 16:
            self._flush_duplicates()
        return bits

    def _write(self, row: list[str]) -> None:
        self.rows += 1
        if not self.many:
            self.csv.writerow(row)
            return
        # Rows of one person are not adjacent in a real export (it is sorted by account or
        # licence number): scatter them a little.
        self._scatter.append(row)
        if len(self._scatter) >= 512:
            self._flush_scatter()

    def _flush_scatter(self) -> None:
        self.rng.shuffle(self._scatter)
        self.csv.writerows(self._scatter)
        self._scatter.clear()

    def _flush_duplicates(self) -> None:
        for row in self._duplicates:
            self._write(row)
        self._duplicates.clear()

    def _duplicate(self, person: Person, row: list[str]) -> None:
        copy = list(row)
        # The repeat is spelled differently: only normalisation shows it is the same person.
        copy[self.id_index] = person.national_id.translate(_ARABIC_INDIC)
        if copy[self.id_index] == row[self.id_index]:
            copy[self.id_index] = _grouped(person.national_id, " ")
        self._duplicates.append(copy)
        self.rejected["duplicate"] += 1

    def _junk_invalid_id(self, person: Person) -> None:
        row = self.sample_row(person)
        row[self.id_index] = _invalid_id(self.rng)
        self._write(row)
        self.rejected["invalid_id"] += 1

    def _junk_missing(self, person: Person) -> None:
        row = self.sample_row(person)
        row[self.rng.choice(self.rule_indices)] = self.rng.choice(("", "", " ", "NULL"))
        self._write(row)
        self.rejected["missing_field"] += 1

    def _junk_bad_value(self, person: Person) -> None:
        row = self.sample_row(person)
        row[self.rng.choice(self.rule_indices)] = self.rng.choice(self.bad_values)
        self._write(row)
        self.rejected["invalid_value"] += 1

    def finish(self) -> dict[str, Any]:
        """Close the file, making sure each kind of junk row occurs at least once (so even a
        small population exercises every rejection), and describe the extract."""
        person = self._last
        if person is not None:
            if not self.rejected["invalid_id"]:
                self._junk_invalid_id(person)
            if not self.many and not self.rejected["duplicate"] and self._first_row is not None:
                first = self._first_row
                copy = list(first)
                copy[self.id_index] = f" {normalise(first[self.id_index], 'iq.ncn')} "
                self._duplicates.append(copy)
                self.rejected["duplicate"] += 1
            if self.rule_indices and not self.rejected["missing_field"]:
                self._junk_missing(person)
            if self.bad_values and not self.rejected["invalid_value"]:
                self._junk_bad_value(person)
        self._flush_duplicates()
        if self._scatter:
            self._flush_scatter()
        self.file.close()
        return {
            "file": self.path.name,
            "definition": f"{self.kind}.toml",
            "rows": self.rows,
            "people": self.people,
            "rejected": dict(sorted((k, v) for k, v in self.rejected.items() if v)),
            "flagged": {code: self.flagged[code] for code in FLAG_CODES if code in self.flagged},
        }


def _likely(person: Person, rng: random.Random, chance: float, roster_factor: float) -> bool:
    if person.on_roster:
        chance *= roster_factor
    return rng.random() < chance


class RosterWriter(ExtractWriter):
    """The welfare ministry's roster: every member of a beneficiary household, with the
    ministry's own beneficiary number and the household's form number (its household ID)."""

    kind = "welfare"
    id_column = "رقم البطاقة الوطنية"
    header = (
        "رقم المستفيد",
        "رقم الاستمارة",
        id_column,
        "الاسم الثلاثي واللقب",
        "صلة القرابة",
        "الجنس",
        "سنة الميلاد",
        "المحافظة",
    )
    arabic_digits = 0.30
    encoding = "utf-8-sig"  # as Excel saves "CSV UTF-8"
    line_end = "\r\n"

    def rows_for(self, person: Person) -> tuple[list[list[str]], int]:
        if not person.on_roster:
            return [], 0
        self.serial += 1  # the ministry numbers its beneficiaries as it enrols them
        return [self.sample_row(person)], 0

    def sample_row(self, person: Person) -> list[str]:
        return [
            f"MB{self.serial:09d}",
            f"{person.governorate.code}-{person.household:08d}",
            self.spell(person),
            person.full_name,
            ROLES_AR[person.role],
            "ذكر" if person.sex == "M" else "أنثى",
            str(person.birth_year),
            person.governorate.name_ar,
        ]


class PensionWriter(ExtractWriter):
    kind = "pension"
    id_column = "رقم البطاقة الوطنية"
    status_column = "حالة الصرف"
    header = (
        id_column,
        "الاسم الكامل",
        "سنة الميلاد",
        "رقم الحساب التقاعدي",
        "نوع التقاعد",
        "الراتب الشهري (دينار)",
        status_column,
        "المحافظة",
    )
    rule_columns = (status_column,)
    bad_values = ("غير معروف", "؟")
    arabic_digits = 0.10
    encoding = "utf-8-sig"
    line_end = "\r\n"

    def rows_for(self, person: Person) -> tuple[list[list[str]], int]:
        age = person.age
        chance = 0.60 if age >= 60 else 0.12 if age >= 50 else 0.01 if age >= 18 else 0.0
        if not chance or not _likely(person, self.rng, chance, 0.6):
            return [], 0
        active = self.rng.random() < 0.9
        row = self._row(person, "مستمر" if active else self.rng.choice(("موقوف", "متوقف")))
        return [row], _holds("pension.recipient", active)

    def sample_row(self, person: Person) -> list[str]:
        return self._row(person, "موقوف")

    def _row(self, person: Person, status: str) -> list[str]:
        rng = self.rng
        self.serial += 1
        return [
            self.spell(person),
            person.full_name,
            str(person.birth_year),
            f"{7_000_000 + self.serial}",
            "عسكري" if rng.random() < 0.25 else "مدني",
            _amount(rng.randrange(400, 2_000) * 1_000, rng),
            status,
            person.governorate.name_ar,
        ]


class TrafficWriter(ExtractWriter):
    kind = "traffic"
    id_column = "رقم البطاقة الوطنية للمالك"
    status_column = "حالة التسجيل"
    header = (
        "رقم اللوحة",
        id_column,
        "اسم المالك",
        "نوع المركبة",
        "سنة الصنع",
        status_column,
        "المحافظة",
    )
    rule_columns = (status_column,)
    bad_values = ("غير محدد",)
    many = True
    arabic_digits = 0.08
    vehicle_types = ("صالون", "بيك اب", "ستيشن", "حمل", "دراجة نارية", "باص صغير")

    def rows_for(self, person: Person) -> tuple[list[list[str]], int]:
        if person.age < 18:
            return [], 0
        chance = 0.38 if person.sex == "M" else 0.06
        if not _likely(person, self.rng, chance, 0.35):
            return [], 0
        rng = self.rng
        count = 1 if rng.random() < 0.78 else 2 if rng.random() < 0.73 else 3
        rows, in_force = [], 0
        for _ in range(count):
            active = rng.random() < 0.92
            in_force += active
            status = rng.choice(("نافذ", "نافذ", "ساري")) if active else "ملغى"
            rows.append(self._row(person, status))
        return rows, _holds("traffic.vehicle_owner", in_force)

    def sample_row(self, person: Person) -> list[str]:
        return self._row(person, "ملغى")

    def _row(self, person: Person, status: str) -> list[str]:
        rng = self.rng
        self.serial += 1
        return [
            f"{person.governorate.name_ar} {100_000 + self.serial}",
            self.spell(person),
            person.full_name,
            rng.choice(self.vehicle_types),
            str(rng.randint(1995, REFERENCE_YEAR)),
            status,
            person.governorate.name_ar,
        ]


class BankWriter(ExtractWriter):
    """A loan book: several loans per borrower, most under the large-loan threshold."""

    kind = "bank"
    id_column = "customer_nid"
    header = (
        id_column,
        "customer_name",
        "loan_account",
        "product",
        "disbursed_on",
        "principal_outstanding_iqd",
        "accrued_interest_iqd",
        "branch",
    )
    rule_columns = ("principal_outstanding_iqd", "accrued_interest_iqd")
    bad_values = ("12,34,567", "خمسون مليون", "1.2.3")
    many = True
    arabic_digits = 0.0  # a core banking system writes ASCII digits
    # product: (share, smallest, largest) principal in IQD
    products = (
        ("personal", 0.50, 1_000_000, 25_000_000),
        ("car", 0.25, 8_000_000, 45_000_000),
        ("housing", 0.15, 30_000_000, 120_000_000),
        ("sme", 0.10, 10_000_000, 200_000_000),
    )
    branches = ("Rafidain Karrada", "Rafidain Mansour", "Rafidain Basra", "Rafidain Mosul")

    def rows_for(self, person: Person) -> tuple[list[list[str]], int]:
        if person.age < 21 or not _likely(person, self.rng, 0.10, 0.3):
            return [], 0
        rng = self.rng
        r = rng.random()
        count = 1 if r < 0.58 else 2 if r < 0.83 else 3 if r < 0.94 else 4 if r < 0.98 else 6
        rows, total = [], Decimal(0)
        for _ in range(count):
            product, principal, interest = self._loan()
            total += principal + interest
            rows.append(self._row(person, product, principal, interest))
        return rows, _holds("bank.large_loan", total)

    def _loan(self) -> tuple[str, int, int | Decimal]:
        rng = self.rng
        r, product = rng.random(), self.products[-1]
        for candidate in self.products:
            if r < candidate[1]:
                product = candidate
                break
            r -= candidate[1]
        name, _, low, high = product
        principal = int(rng.uniform(low**0.5, high**0.5) ** 2) // 1_000 * 1_000
        interest: int | Decimal = 0
        if rng.random() < 0.4:
            interest = int(principal * rng.uniform(0.005, 0.06)) // 250 * 250
            if rng.random() < 0.1:
                interest = Decimal(interest) + Decimal("0.50")
        return name, principal, interest

    def sample_row(self, person: Person) -> list[str]:
        return self._row(person, *self._loan())

    def _row(
        self, person: Person, product: str, principal: int, interest: int | Decimal
    ) -> list[str]:
        rng = self.rng
        self.serial += 1
        year = rng.randint(2015, REFERENCE_YEAR - 1)
        return [
            self.spell(person),
            person.full_name,
            f"LN{4_400_000_000 + self.serial}",
            product,
            f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            _amount(principal, rng),
            _amount(interest, rng),
            rng.choice(self.branches),
        ]


class TradeWriter(ExtractWriter):
    """Trade licences; a few are fuel stations, gas-filling stations or private generators."""

    kind = "trade"
    id_column = "رقم البطاقة الوطنية"
    activity_column = "نوع النشاط"
    header = (
        "رقم الإجازة",
        id_column,
        "اسم صاحب الإجازة",
        activity_column,
        "المحافظة",
        "تاريخ الإصدار",
    )
    rule_columns = (activity_column,)
    many = True
    arabic_digits = 0.05
    # (flag, share of licences, spellings)
    rare = (
        ("trade.fuel_station_owner", 0.025, ("محطة وقود", "محطة وقود", "محطة تعبئة وقود")),
        ("trade.gas_station_owner", 0.020, ("محطة تعبئة غاز", "محطة غاز")),
        ("trade.generator_owner", 0.090, ("مولدة أهلية", "مولدة اهلية", "مولدة كهرباء أهلية")),
    )
    common = (
        "محل تجاري",
        "مخبز",
        "صيدلية",
        "مطعم",
        "ورشة تصليح سيارات",
        "مكتب عقارات",
        "محل مواد إنشائية",
    )

    def rows_for(self, person: Person) -> tuple[list[list[str]], int]:
        if person.age < 25 or not _likely(person, self.rng, 0.04, 0.3):
            return [], 0
        rng = self.rng
        count = 1 if rng.random() < 0.88 else 2 if rng.random() < 0.83 else 3
        rows, bits = [], 0
        for _ in range(count):
            flag, activity = self._activity()
            bits |= FLAG_BITS[flag] if flag else 0
            rows.append(self._row(person, activity))
        # one_of + combine "any" is is_true on "has a licence of this activity"
        truth = 0
        for code, _, _ in self.rare:
            truth |= _holds(code, bool(bits & FLAG_BITS[code]))
        return rows, truth

    def _activity(self) -> tuple[str | None, str]:
        rng = self.rng
        # The first licences cycle through the rare activities, so that even a population of a
        # few hundred has an owner of each; at realistic sizes this is a handful of rows.
        if self.serial < 2 * len(self.rare):
            code, _, spellings = self.rare[self.serial % len(self.rare)]
            return code, rng.choice(spellings)
        r = rng.random()
        for code, share, spellings in self.rare:
            if r < share:
                return code, rng.choice(spellings)
            r -= share
        return None, rng.choice(self.common)

    def sample_row(self, person: Person) -> list[str]:
        return self._row(person, self.rng.choice(self.common))

    def _row(self, person: Person, activity: str) -> list[str]:
        rng = self.rng
        self.serial += 1
        return [
            f"TR-{self.serial:08d}",
            self.spell(person),
            person.full_name,
            activity,
            person.governorate.name_ar,
            f"{rng.randint(2005, REFERENCE_YEAR - 1)}-{rng.randint(1, 12):02d}-01",
        ]


class EducationWriter(ExtractWriter):
    kind = "education"
    id_column = "رقم البطاقة الوطنية"
    paid_column = "يتقاضى راتباً"
    header = (
        id_column,
        "الاسم الكامل",
        "الرقم الوظيفي",
        "المديرية العامة",
        "العنوان الوظيفي",
        "الراتب الاسمي",
        paid_column,
    )
    rule_columns = (paid_column,)
    bad_values = ("ربما", "نعم/لا")
    arabic_digits = 0.10
    encoding = "utf-8-sig"
    line_end = "\r\n"
    titles = ("معلم", "مدرس", "مشرف تربوي", "موظف إداري", "مدير مدرسة")

    def rows_for(self, person: Person) -> tuple[list[list[str]], int]:
        if not 23 <= person.age <= 63 or not _likely(person, self.rng, 0.08, 0.4):
            return [], 0
        paid = self.rng.random() < 0.95
        return [self._row(person, paid)], _holds("education.employee", paid)

    def sample_row(self, person: Person) -> list[str]:
        return self._row(person, False)

    def _row(self, person: Person, paid: bool) -> list[str]:
        rng = self.rng
        self.serial += 1
        if paid:
            word = "نعم" if rng.random() < 0.7 else rng.choice(("1", "١"))
        else:
            word = "لا" if rng.random() < 0.7 else "0"
        return [
            self.spell(person),
            person.full_name,
            f"{300_000 + self.serial}",
            f"مديرية تربية {person.governorate.name_ar}",
            rng.choice(self.titles),
            _amount(rng.randrange(250, 1_500) * 1_000, rng),
            word,
        ]


class HigherEducationWriter(ExtractWriter):
    kind = "higher_education"
    id_column = "national_id"
    header = (id_column, "employee_no", "full_name_ar", "institution", "position", "on_payroll")
    rule_columns = ("on_payroll",)
    bad_values = ("maybe", "pending")
    arabic_digits = 0.02
    institutions = (
        "University of Baghdad",
        "Mustansiriyah University",
        "University of Basrah",
        "University of Mosul",
        "University of Kufa",
        "University of Technology",
        "Al-Nahrain University",
    )
    positions = ("assistant lecturer", "lecturer", "assistant professor", "professor", "staff")

    def rows_for(self, person: Person) -> tuple[list[list[str]], int]:
        if not 25 <= person.age <= 67 or not _likely(person, self.rng, 0.012, 0.3):
            return [], 0
        paid = self.rng.random() < 0.96
        return [self._row(person, paid)], _holds("higher_education.employee", paid)

    def sample_row(self, person: Person) -> list[str]:
        return self._row(person, False)

    def _row(self, person: Person, paid: bool) -> list[str]:
        rng = self.rng
        self.serial += 1
        words = ("yes", "Yes", "TRUE", "1", "Y") if paid else ("no", "FALSE", "0", "N")
        return [
            self.spell(person),
            f"U{10_000 + self.serial}",
            person.full_name,
            rng.choice(self.institutions),
            rng.choice(self.positions),
            rng.choice(words),
        ]


WRITERS: Sequence[type[ExtractWriter]] = (
    RosterWriter,
    PensionWriter,
    TrafficWriter,
    BankWriter,
    TradeWriter,
    EducationWriter,
    HigherEducationWriter,
)
"""One writer per agency kind; ``<kind>.csv`` is read with ``connectors/<kind>.toml``."""


# --- the whole data set ---------------------------------------------------------------------------

TRUTH_FORMAT = "matchhub-synth-truth/1"
POPULATION_HEADER = (
    "national_id",
    "household",
    "role",
    "sex",
    "birth_year",
    "given_name",
    "father_name",
    "grandfather_name",
    "family_name",
    "governorate",
    "on_roster",
)


def generate(people: int, seed: int, out: Path) -> dict[str, Any]:
    """
    Write a population of `people` and every agency's extract to `out`, with the ground truth:

    - ``population.csv``: everyone (ID, household, role, names, birth year, governorate);
    - ``<kind>.csv``: each agency's extract, read with ``connectors/<kind>.toml``;
    - ``truth.csv``: ``national_id,on_roster,flags`` for everyone on the roster or flagged,
      flags ``;``-separated in catalogue order;
    - ``truth.json``: counts per flag (population and roster), each extract's rows, people and
      the rows a connector must reject by reason, and the rules the truth assumes.

    Returns the truth.json document. Deterministic: the same (people, seed) writes the same bytes.
    """
    from matchhub.synth.population import Population  # noqa: PLC0415 (avoids an import cycle)

    out.mkdir(parents=True, exist_ok=True)
    writers = [cls(out, seed) for cls in WRITERS]
    population = Population(people, seed)
    flagged: Counter[str] = Counter()
    flagged_roster: Counter[str] = Counter()
    roster = 0
    with (
        (out / "population.csv").open("w", encoding="utf-8", newline="", buffering=1 << 20) as pf,
        (out / "truth.csv").open("w", encoding="utf-8", newline="", buffering=1 << 20) as tf,
    ):
        population_csv = csv.writer(pf, lineterminator="\n")
        truth_csv = csv.writer(tf, lineterminator="\n")
        population_csv.writerow(POPULATION_HEADER)
        truth_csv.writerow(("national_id", "on_roster", "flags"))
        masks: Counter[int] = Counter()
        roster_masks: Counter[int] = Counter()
        for household in population.households():
            for person in household:
                mask = 0
                for writer in writers:
                    mask |= writer.add(person)
                population_csv.writerow(
                    (
                        person.national_id,
                        person.household,
                        person.role,
                        person.sex,
                        person.birth_year,
                        person.given,
                        person.father,
                        person.grandfather,
                        person.family,
                        person.governorate.name_en,
                        int(person.on_roster),
                    )
                )
                if person.on_roster:
                    roster += 1
                    roster_masks[mask] += 1
                if mask or person.on_roster:
                    masks[mask] += 1
                    truth_csv.writerow(
                        (person.national_id, int(person.on_roster), ";".join(flags_of(mask)))
                    )
    for mask, n in masks.items():
        for code in flags_of(mask):
            flagged[code] += n
    for mask, n in roster_masks.items():
        for code in flags_of(mask):
            flagged_roster[code] += n
    document = {
        "format": TRUTH_FORMAT,
        "seed": seed,
        "people": people,
        "households": population.households_made,
        "roster": roster,
        "roster_flagged": sum(n for mask, n in roster_masks.items() if mask),
        "rules": {code: _RULES[code] for code in FLAG_CODES},
        "flags": {
            code: {"population": flagged[code], "roster": flagged_roster[code]}
            for code in FLAG_CODES
        },
        "extracts": {writer.kind: writer.finish() for writer in writers},
    }
    (out / "truth.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return document
