"""
A plausible synthetic population of Iraq: households with a head and members, Arabic names that
follow the naming pattern (given name, father's given name, grandfather's given name, family
name), governorates weighted by population, birth years consistent within a household, and
unique valid 12-digit national card numbers.

Everything is drawn from seeded pseudo-random generators (`random.Random`, never for secrets), so
one seed always gives the same population, person for person, and people are produced one
household at a time: generating 10 million people needs no more memory than generating ten.

None of these people exist. Identifiers are drawn from the whole 12-digit space through a keyed
permutation, so they are unique without remembering them, and the ten one-digit runs
(``000000000000`` ...) that TOKEN-SPEC.md refuses as placeholders are skipped.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

__all__ = [
    "GOVERNORATES",
    "REFERENCE_YEAR",
    "Governorate",
    "IdPermutation",
    "Person",
    "Population",
]

REFERENCE_YEAR = 2025
"""Ages are computed against this year, not today's date, so a seed means the same data forever."""


@dataclass(frozen=True, slots=True)
class Governorate:
    code: str
    name_en: str
    name_ar: str
    weight: float  # population, millions (2024 estimates, rounded)
    poverty: float  # relative poverty rate: 1.0 is the national average (rough, for realism)


GOVERNORATES: tuple[Governorate, ...] = (
    Governorate("BGD", "Baghdad", "بغداد", 8.9, 0.8),
    Governorate("NIN", "Nineveh", "نينوى", 4.0, 1.3),
    Governorate("BSR", "Basra", "البصرة", 3.2, 1.1),
    Governorate("SUL", "Sulaymaniyah", "السليمانية", 2.3, 0.5),
    Governorate("DHQ", "Dhi Qar", "ذي قار", 2.2, 1.6),
    Governorate("BAB", "Babil", "بابل", 2.2, 1.1),
    Governorate("ANB", "Anbar", "الأنبار", 1.9, 1.1),
    Governorate("ERB", "Erbil", "أربيل", 1.9, 0.5),
    Governorate("DIY", "Diyala", "ديالى", 1.7, 1.1),
    Governorate("KRK", "Kirkuk", "كركوك", 1.7, 0.9),
    Governorate("SAL", "Saladin", "صلاح الدين", 1.7, 1.1),
    Governorate("NAJ", "Najaf", "النجف", 1.5, 1.0),
    Governorate("WAS", "Wasit", "واسط", 1.4, 1.2),
    Governorate("QAD", "Al-Qadisiyyah", "القادسية", 1.4, 1.6),
    Governorate("DUH", "Duhok", "دهوك", 1.4, 0.7),
    Governorate("KAR", "Karbala", "كربلاء", 1.3, 1.0),
    Governorate("MAY", "Maysan", "ميسان", 1.2, 1.6),
    Governorate("MUT", "Muthanna", "المثنى", 0.9, 2.0),
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


MALE_NAMES = _words(
    "محمد أحمد علي حسين حسن عباس جعفر كاظم مصطفى عمر عثمان خالد إبراهيم يوسف عبدالله "
    "عبدالرحمن كريم جاسم قاسم سعد صالح حيدر مهدي رضا باقر صادق ياسين زيد سجاد مرتضى منتظر "
    "أمير علاء فلاح ستار جبار عادل ماجد فاضل طارق رعد نبيل هاشم سلمان ناصر فراس وليد "
    "محمود ياسر زكي حمزة أيوب نوري شاكر رحيم عدنان لؤي مالك"
)
FEMALE_NAMES = _words(
    "فاطمة زينب مريم نور سارة رقية زهراء هدى إيمان آمنة خديجة عائشة بتول رنا شيماء سعاد "
    "نادية وفاء أمل ليلى سهى هبة دعاء آيات غفران سجى حوراء بنين تبارك رحاب سناء جنان "
    "ابتسام انتصار أسماء منى علياء نرجس كوثر رباب إسراء ضحى"
)
FAMILY_NAMES = _words(
    "الجبوري الساعدي التميمي الدليمي العبيدي الشمري الزبيدي الخزرجي الربيعي الكعبي "
    "المالكي العامري الحسيني الموسوي الياسري الجنابي العزاوي الكبيسي الدوري السامرائي "
    "البياتي النعيمي اللامي الفتلاوي الحلفي البديري الغراوي الكناني الطائي العنزي الزيدي "
    "الخفاجي الأسدي الحمداني السعدي المحمداوي السوداني الحيدري الراوي العاني الكرخي "
    "البغدادي الحلي"
)

ROLES_AR = {
    "head": "رب الأسرة",
    "spouse": "زوجة",
    "son": "ابن",
    "daughter": "ابنة",
    "father": "أب",
    "mother": "أم",
}

# Children per mother: 0..8, the shape of an Iraqi household (mean around 3.5).
_CHILDREN_WEIGHTS = (8, 10, 15, 18, 17, 13, 9, 6, 4)
_CHILDREN_CUMULATIVE = tuple(accumulate(_CHILDREN_WEIGHTS))
_GOV_CUMULATIVE = tuple(accumulate(g.weight for g in GOVERNORATES))
_MEAN_POVERTY = sum(g.weight * g.poverty for g in GOVERNORATES) / _GOV_CUMULATIVE[-1]

ROSTER_SHARE = 0.40
"""The share of people on the welfare roster (members of beneficiary households)."""


@dataclass(slots=True)
class Person:
    national_id: str
    household: int
    role: str
    sex: str  # "M" or "F"
    birth_year: int
    given: str
    father: str
    grandfather: str
    family: str
    governorate: Governorate
    on_roster: bool = False

    @property
    def age(self) -> int:
        return REFERENCE_YEAR - self.birth_year

    @property
    def full_name(self) -> str:
        """The triple name and the family name, as Iraqi registers write it."""
        return f"{self.given} {self.father} {self.grandfather} {self.family}"


class IdPermutation:
    """
    A keyed bijection of [0, 10^12): index i → a 12-digit number, as a 4-round Feistel network on
    two 6-digit halves. Distinct indices give distinct numbers, and consecutive indices give
    unrelated-looking numbers (leading zeros included, as real cards may have them).
    """

    _HALF = 10**6

    def __init__(self, rng: random.Random) -> None:
        self._keys = tuple((rng.getrandbits(32), rng.getrandbits(32) | 1) for _ in range(4))

    def __call__(self, index: int) -> int:
        half = self._HALF
        left, right = divmod(index, half)
        for add, multiply in self._keys:
            mixed = ((right ^ add) * multiply) & 0xFFFFFFFF
            left, right = right, (left + (mixed ^ (mixed >> 15))) % half
        return left * half + right


_PLACEHOLDERS = frozenset(int(str(d) * 12) for d in range(10))


class Population:
    """
    Households of synthetic people, exactly `people` of them, deterministic under `seed`.

    Iterate `households()` once; each household is a list whose first member is its head.
    """

    def __init__(self, people: int, seed: int) -> None:
        if people < 1:
            raise ValueError("a population has at least one person")
        self.people, self.seed = people, seed
        self.rng = random.Random(f"matchhub-synth/{seed}/population")  # noqa: S311 (synthetic data, not secrets)
        self._ids = IdPermutation(random.Random(f"matchhub-synth/{seed}/ids"))  # noqa: S311 (as above)
        self._next_index = 0
        self.households_made = 0

    def _national_id(self) -> str:
        while True:
            number = self._ids(self._next_index)
            self._next_index += 1
            if number not in _PLACEHOLDERS:
                return f"{number:012d}"

    def households(self) -> Iterator[list[Person]]:
        made = 0
        while made < self.people:
            members = self._household(self.households_made + 1)[: self.people - made]
            self.households_made += 1
            made += len(members)
            yield members

    def _household(self, number: int) -> list[Person]:
        rng = self.rng
        gov = GOVERNORATES[bisect(_GOV_CUMULATIVE, rng.random() * _GOV_CUMULATIVE[-1])]
        head_female = rng.random() < 0.14  # mostly widows
        head_age = int(rng.triangular(22, 82, 38))
        family = rng.choice(FAMILY_NAMES)
        head = self._person(
            number,
            "head",
            "F" if head_female else "M",
            REFERENCE_YEAR - head_age,
            gov=gov,
            family=family,
        )
        members = [head]
        mother: Person | None = head if head_female else None
        if not head_female and rng.random() < 0.88:
            age = max(18, head_age - int(rng.triangular(0, 14, 4)))
            mother = self._person(
                number,
                "spouse",
                "F",
                REFERENCE_YEAR - age,
                gov=gov,
                family=rng.choice(FAMILY_NAMES),
            )
            members.append(mother)
        if mother is not None:
            members += self._children(number, head, mother, gov)
        if head_age < 60 and rng.random() < 0.12:
            members.append(self._parent(number, head, gov))
        on_roster = rng.random() < self._roster_chance(gov, len(members))
        for person in members:
            person.on_roster = on_roster
        return members

    @staticmethod
    def _roster_chance(gov: Governorate, size: int) -> float:
        # Poorer governorates and larger households are likelier beneficiaries; the constants
        # keep the roster near ROSTER_SHARE of all people.
        return min(0.95, ROSTER_SHARE * 0.86 * gov.poverty / _MEAN_POVERTY * (0.55 + 0.1 * size))

    def _person(
        self, household: int, role: str, sex: str, birth_year: int, *, gov: Governorate, family: str
    ) -> Person:
        rng = self.rng
        given = rng.choice(FEMALE_NAMES if sex == "F" else MALE_NAMES)
        return Person(
            national_id=self._national_id(),
            household=household,
            role=role,
            sex=sex,
            birth_year=birth_year,
            given=given,
            father=rng.choice(MALE_NAMES),
            grandfather=rng.choice(MALE_NAMES),
            family=family,
            governorate=gov,
        )

    def _children(
        self, household: int, head: Person, mother: Person, gov: Governorate
    ) -> list[Person]:
        rng = self.rng
        wanted = bisect(_CHILDREN_CUMULATIVE, rng.random() * _CHILDREN_CUMULATIVE[-1])
        first, last = mother.birth_year + 18, min(mother.birth_year + 45, REFERENCE_YEAR)
        if first > last:
            return []
        if head.sex == "M":
            father, grandfather, family = head.given, head.father, head.family
        else:  # a widow's children carry their late father's names
            father, grandfather = rng.choice(MALE_NAMES), rng.choice(MALE_NAMES)
            family = rng.choice(FAMILY_NAMES)
        children = []
        for _ in range(wanted):
            son = rng.random() < 0.51
            child = self._person(
                household,
                "son" if son else "daughter",
                "M" if son else "F",
                rng.randint(first, last),
                gov=gov,
                family=family,
            )
            child.father, child.grandfather = father, grandfather
            children.append(child)
        children.sort(key=lambda c: c.birth_year)
        return children

    def _parent(self, household: int, head: Person, gov: Governorate) -> Person:
        rng = self.rng
        male = rng.random() < 0.35
        age = min(95, head.age + rng.randint(20, 35))
        if male:
            parent = self._person(
                household, "father", "M", REFERENCE_YEAR - age, gov=gov, family=head.family
            )
            parent.given, parent.father = head.father, head.grandfather
            return parent
        return self._person(
            household, "mother", "F", REFERENCE_YEAR - age, gov=gov, family=rng.choice(FAMILY_NAMES)
        )
