"""The kinds of agency a hub knows: the providers that assert flags, the welfare ministry that
consumes them, and the audit office. Part of the protocol: a connector names its kind, and the
flag catalogue says which kind may assert each flag."""

from __future__ import annotations

from enum import StrEnum


class AgencyKind(StrEnum):
    pension = "pension"
    traffic = "traffic"
    bank = "bank"
    trade = "trade"
    education = "education"
    higher_education = "higher_education"
    welfare = "welfare"
    auditor = "auditor"

    @property
    def is_provider(self) -> bool:
        return self in PROVIDER_KINDS


PROVIDER_KINDS = frozenset(
    {
        AgencyKind.pension,
        AgencyKind.traffic,
        AgencyKind.bank,
        AgencyKind.trade,
        AgencyKind.education,
        AgencyKind.higher_education,
    }
)
