"""The flag catalogue as each kind of caller sees it, and as the operator changes it."""

from __future__ import annotations

from matchhub.catalogue import service as catalogue
from matchhub.protocol import catalogue as defaults
from matchhub.protocol.kinds import AgencyKind
from tests.conftest import InProcessApi


def _catalogue(api: InProcessApi, code: str, kind: AgencyKind) -> dict[str, object]:
    creds = api.hub.credentials.get(code) or api.hub.add_agency(code, kind)
    with api.client(creds) as client:
        response = client.get("/v1/flags")
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def test_each_kind_sees_its_part_of_the_catalogue(api: InProcessApi) -> None:
    bank = _catalogue(api, "rafidain", AgencyKind.bank)
    assert [(f["code"], f["access"]) for f in bank["flags"]] == [("bank.large_loan", "assert")]
    assert bank["flags"][0]["rule"]["params"]["threshold"] == 50_000_000
    assert bank["purposes"] == []

    welfare = _catalogue(api, "molsa", AgencyKind.welfare)
    seeded = sorted(f.code for f in defaults.FLAGS)
    assert sorted(f["code"] for f in welfare["flags"]) == seeded
    purposes = sorted(p.code for p in defaults.PURPOSES)
    assert all(f["purposes"] == purposes for f in welfare["flags"])
    assert sorted(p["code"] for p in welfare["purposes"]) == purposes
    fuel = next(f for f in welfare["flags"] if f["code"] == "trade.fuel_station_owner")
    assert fuel["labels"] == {"en": "Owns a fuel station", "ar": "يمتلك محطة وقود"}

    auditor = _catalogue(api, "audit-board", AgencyKind.auditor)
    assert sorted(f["code"] for f in auditor["flags"]) == seeded


def test_grant_changes_reach_the_consumer(api: InProcessApi) -> None:
    hub = api.hub
    with hub.session() as session:
        catalogue.revoke_grant(session, "kind:welfare", "bank.large_loan", "appeal_investigation")
        catalogue.add_grant(session, "agency:molsa", "bank.large_loan", "appeal_investigation")
        catalogue.revoke_grant(session, "kind:welfare", "pension.recipient", "recertification")
    welfare = _catalogue(api, "molsa", AgencyKind.welfare)
    by_code = {f["code"]: f["purposes"] for f in welfare["flags"]}
    assert by_code["bank.large_loan"] == sorted(p.code for p in defaults.PURPOSES)
    assert "recertification" not in by_code["pension.recipient"]
    other = _catalogue(api, "kurdistan-welfare", AgencyKind.welfare)
    other_codes = {f["code"]: f["purposes"] for f in other["flags"]}
    assert "appeal_investigation" not in other_codes["bank.large_loan"]
