"""What ``matchhub init`` seeds: the flags and purposes of the first deployment (Iraq's Ministry
of Labour and Social Affairs and its partners). The rules are evaluated by the connectors at the
source; their parameters are what a connector reads (``connectors/*.toml`` name the columns)."""

from __future__ import annotations

from typing import Any, NamedTuple


class FlagSpec(NamedTuple):
    code: str
    asserted_by: str
    label_en: str
    label_ar: str
    rule_text: str
    rule_params: dict[str, Any]


class PurposeSpec(NamedTuple):
    code: str
    label_en: str
    label_ar: str
    legal_basis: str


FLAGS: tuple[FlagSpec, ...] = (
    FlagSpec(
        "bank.large_loan",
        "bank",
        "Holds a large loan",
        "لديه قرض كبير",
        "Outstanding loans of at least 50,000,000 IQD at the reporting bank.",
        {"op": "gte", "field": "outstanding_loans_iqd", "threshold": 50_000_000},
    ),
    FlagSpec(
        "pension.recipient",
        "pension",
        "Receives a pension",
        "يتقاضى راتباً تقاعدياً",
        "An active pension payment in the reporting month.",
        {"op": "is_true", "field": "pension_active"},
    ),
    FlagSpec(
        "traffic.vehicle_owner",
        "traffic",
        "Owns a registered vehicle",
        "يمتلك مركبة مسجلة",
        "At least one vehicle registered in the person's name.",
        {"op": "gte", "field": "vehicles_registered", "threshold": 1},
    ),
    FlagSpec(
        "trade.fuel_station_owner",
        "trade",
        "Owns a fuel station",
        "يمتلك محطة وقود",
        "Registered owner or partner of a licensed fuel station.",
        {"op": "is_true", "field": "owns_fuel_station"},
    ),
    FlagSpec(
        "trade.gas_station_owner",
        "trade",
        "Owns a gas-filling station",
        "يمتلك محطة تعبئة غاز",
        "Registered owner or partner of a licensed gas-filling station.",
        {"op": "is_true", "field": "owns_gas_station"},
    ),
    FlagSpec(
        "trade.generator_owner",
        "trade",
        "Owns a private generator",
        "يمتلك مولدة أهلية",
        "Licensed operator of a neighbourhood (private) electricity generator.",
        {"op": "is_true", "field": "owns_generator"},
    ),
    FlagSpec(
        "education.employee",
        "education",
        "Employed by the Ministry of Education",
        "موظف في وزارة التربية",
        "On the Ministry of Education payroll in the reporting month.",
        {"op": "is_true", "field": "on_payroll"},
    ),
    FlagSpec(
        "higher_education.employee",
        "higher_education",
        "Employed by the Ministry of Higher Education",
        "موظف في وزارة التعليم العالي",
        "On the Ministry of Higher Education and Scientific Research payroll in the reporting "
        "month.",
        {"op": "is_true", "field": "on_payroll"},
    ),
)

PURPOSES: tuple[PurposeSpec, ...] = (
    PurposeSpec(
        "eligibility_review",
        "Eligibility review",
        "مراجعة الأهلية",
        "Social Protection Law No. 11 of 2014 (Iraq), as amended: verification that applicants "
        "and beneficiaries meet the eligibility criteria of the social safety net.",
    ),
    PurposeSpec(
        "recertification",
        "Periodic recertification",
        "إعادة التحقق الدوري",
        "Social Protection Law No. 11 of 2014 (Iraq): periodic re-verification of enrolled "
        "households.",
    ),
    PurposeSpec(
        "appeal_investigation",
        "Appeal investigation",
        "التحقيق في التظلم",
        "Social Protection Law No. 11 of 2014 (Iraq): review of a beneficiary's appeal against "
        "a decision on eligibility.",
    ),
)

WELFARE_GRANTEE = "kind:welfare"
