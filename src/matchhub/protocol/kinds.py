"""The kinds of agency a hub knows: the providers that assert flags, the welfare ministry that
consumes them, the audit office, and the monitor (the operator's Prometheus, which reads the
broker's metrics and nothing else). Part of the protocol: a connector names its kind, and the
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
    monitor = "monitor"

    @property
    def is_provider(self) -> bool:
        return self in PROVIDER_KINDS

    @property
    def has_connector(self) -> bool:
        """Whether agencies of this kind push data (a connector definition names it)."""
        return self not in (AgencyKind.auditor, AgencyKind.monitor)


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
