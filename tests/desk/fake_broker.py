"""The broker's case API as its contract states it (DESIGN.md, issue 15), as an
``httpx.MockTransport``: for testing the desk's own case logic (assignment, the mirror, what is
sent) without a broker. The browser test runs the same flow against the real broker.

It keeps every request it was sent, so a test can assert what went and who was named.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

NOTICE_DAYS = 30
FINISHED = ("closed", "lapsed")
LAPSE_DAYS = 14
FLAGS = (
    ("bank.large_loan", "قرض كبير", "A large bank loan"),
    ("pension.recipient", "متقاعد", "Receives a pension"),
    ("traffic.vehicle_owner", "مالك مركبة", "Owns a vehicle"),
    ("trade.fuel_station_owner", "مالك محطة وقود", "Owns a fuel station"),
    ("education.employee", "موظف في التربية", "Employed by the Ministry of Education"),
    ("higher_education.employee", "موظف في التعليم العالي", "Employed in higher education"),
)
_MOVES = {
    "indication": {"verifying"},
    "verifying": {"confirmed", "refuted"},
    "confirmed": {"notified", "decided"},
    "refuted": {"closed"},
    "notified": {"responded", "decided"},
    "responded": {"decided"},
    "decided": {"closed"},
}


@dataclass
class FakeBroker:
    now: datetime = field(default_factory=lambda: datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[httpx.Request] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # case id → token (never answered)
    refusing: str | None = None  # an error code every opening gets, while set

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def bodies(self) -> str:
        return "\n".join(r.content.decode() for r in self.sent)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        path = request.url.path
        body = json.loads(request.content) if request.content else {}
        reads = {"/v1/flags": _catalogue, "/v1/feedback": self._feedback, "/v1/cases": self._list}
        if path == "/v1/cases" and request.method == "POST":
            return self._open(request, body)
        if path in reads:
            return httpx.Response(200, json=reads[path](request))
        found = re.fullmatch(r"/v1/cases/([^/]+)(/transitions)?", path)
        if found is None or found.group(1) not in self.cases:
            return _error(404, "case_not_found")
        case = self._lapse(self.cases[found.group(1)])
        if found.group(2):
            return self._move(request, case, body)
        return httpx.Response(200, json=self._shown(case, history=True))

    def _open(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if self.refusing:
            return _error(409, self.refusing)
        token = str(body.get("token", ""))
        if not re.fullmatch(r"[0-9a-f]{64}", token) or not body.get("flags"):
            return _error(422, "invalid_case")
        if ("job" in body) == ("lookup" in body):
            return _error(422, "invalid_case")
        for other, held in self.tokens.items():
            if held == token and self._lapse(self.cases[other])["state"] not in FINISHED:
                return _error(409, "case_exists", {"case": other})
        case_id = f"case-{len(self.cases) + 1}"
        self.tokens[case_id] = token
        self.cases[case_id] = {
            "id": case_id,
            "state": "indication",
            "flags": [
                {"code": code, "source": code.split(".")[0], "as_of": "2026-11-30"}
                for code in body["flags"]
            ],
            "reason": None,
            "response_due_at": None,
            "lapses_at": (self.now + timedelta(days=LAPSE_DAYS)).isoformat(),
            "history": [self._step(request, "indication", None)],
        }
        return httpx.Response(201, json=self._shown(self.cases[case_id]))

    def _move(
        self, request: httpx.Request, case: dict[str, Any], body: dict[str, Any]
    ) -> httpx.Response:
        to, reason = body.get("to"), body.get("reason")
        if case["state"] in ("closed", "lapsed"):
            return _error(409, f"case_{case['state']}")
        if to not in _MOVES.get(case["state"], set()):
            return _error(409, "illegal_transition")
        early = case["state"] == "notified" and self.now < _when(case["response_due_at"])
        if to == "decided" and reason == "upheld" and early:
            return _error(409, "response_not_due")
        case["state"] = to
        if to in ("refuted", "decided"):
            case["reason"] = reason
        if to == "notified":
            case["response_due_at"] = (self.now + timedelta(days=NOTICE_DAYS)).isoformat()
        case["history"].append(self._step(request, to, reason))
        return httpx.Response(200, json=self._shown(case))

    def _list(self, request: httpx.Request) -> dict[str, Any]:
        state = request.url.params.get("state")
        listed = [self._shown(c) for c in self.cases.values()]
        return {"cases": [c for c in listed if state in (None, c["state"])], "next_offset": None}

    def _feedback(self, request: httpx.Request) -> dict[str, Any]:
        """The consumer's view: confirmation rates per flag and per source of its cases."""
        parts: dict[str, dict[str, dict[str, Any]]] = {"per_flag": {}, "per_source": {}}
        for case in self.cases.values():
            outcome = next(
                (s for s in case["history"] if s["to"] in ("confirmed", "refuted")), None
            )
            if outcome is None:
                continue
            for flag in case["flags"]:
                for part, key in (("per_flag", flag["code"]), ("per_source", flag["source"])):
                    row = parts[part].setdefault(
                        key, {"key": key, "confirmed": 0, "refuted": 0, "refuted_by_reason": {}}
                    )
                    row[outcome["to"]] += 1
                    if outcome["to"] == "refuted":
                        by = row["refuted_by_reason"]
                        by[outcome["reason"]] = by.get(outcome["reason"], 0) + 1
        answer: dict[str, Any] = {"role": "consumer", "threshold": 10}
        for part, rows in parts.items():
            for row in rows.values():
                row["rate"] = row["confirmed"] / (row["confirmed"] + row["refuted"])
            answer[part] = list(rows.values())
        return answer

    def _lapse(self, case: dict[str, Any]) -> dict[str, Any]:
        if case["state"] == "indication" and self.now >= datetime.fromisoformat(case["lapses_at"]):
            case["state"] = "lapsed"
        return case

    def _step(self, request: httpx.Request, to: str, reason: str | None) -> dict[str, Any]:
        return {
            "to": to,
            "reason": reason,
            "at": self.now.isoformat(),
            "end_user": request.headers.get("matchhub-end-user"),
        }

    def _shown(self, case: dict[str, Any], *, history: bool = False) -> dict[str, Any]:
        shown = {k: v for k, v in self._lapse(case).items() if k != "history"}
        if history:
            shown["history"] = case["history"]
        return shown


def _when(value: str | None) -> datetime:
    return datetime.fromisoformat(value) if value else datetime.max.replace(tzinfo=UTC)


def _catalogue(request: httpx.Request) -> dict[str, Any]:
    return {
        "flags": [{"code": c, "labels": {"ar": ar, "en": en}} for c, ar, en in FLAGS],
        "purposes": [
            {"code": "eligibility_review", "labels": {"ar": "مراجعة الاستحقاق", "en": "Review"}}
        ],
    }


def _error(status: int, code: str, details: dict[str, Any] | None = None) -> httpx.Response:
    error: dict[str, Any] = {"code": code, "message": code.replace("_", " ")}
    if details:
        error["details"] = details
    return httpx.Response(status, json={"error": error})
