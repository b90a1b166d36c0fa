"""The scheduled pass over cases and job results: indications that lapsed, and closed cases and
job results past their retention, deleted with a receipt each in the audit log.

A receipt is an ordinary audit entry (kind ``retention``), hash-chained and checkpointed like
any other, so an auditor verifies it offline (``matchhub audit verify``, which also checks each
receipt's count against its ids): what class of record was deleted, how many, which ids, under
which policy (the setting and its value), the cut-off and when. Each batch deletes and receipts
in one transaction: a receipt is never written for a deletion that did not happen, nor the
reverse. Run by the background janitor (web/background.py) and by ``matchhub retention run``;
several processes may run it at once (rows are claimed with ``SKIP LOCKED``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from matchhub.audit import service as audit
from matchhub.audit.service import AuditKeys
from matchhub.cases import service
from matchhub.cases.repository import CaseRepository
from matchhub.jobs import service as jobs
from matchhub.kit.db import session_scope
from matchhub.kit.settings import Settings
from matchhub.protocol.verify import RECEIPT_KIND  # what the offline verifier checks

BATCH = 500
LAPSE_BATCH = 1000


@dataclass(frozen=True)
class Receipt:
    record_class: str
    ids: list[str]
    policy: str
    cutoff: datetime
    seq: int


def _receipt(
    session: Session,
    keys: AuditKeys,
    record_class: str,
    ids: list[str],
    *,
    policy: str,
    cutoff: datetime,
    now: datetime,
) -> Receipt:
    body: dict[str, Any] = {
        "action": "delete",
        "record_class": record_class,
        "count": len(ids),
        "ids": ids,
        "policy": policy,
        "cutoff": cutoff.isoformat(timespec="seconds"),
        "when": now.isoformat(timespec="seconds"),
    }
    seq = audit.append(session, keys, kind=RECEIPT_KIND, body=body)
    return Receipt(record_class, ids, policy, cutoff, seq)


def lapse(session: Session, keys: AuditKeys, now: datetime) -> int:
    """Record the indications past their lapse time as lapsed, an audit entry each."""
    cases = service.lapse_due(session, now, LAPSE_BATCH)
    codes = CaseRepository(session).agency_codes({c.agency_id for c in cases})
    for case in cases:
        # Named by the consumer whose case it is, so the auditors' agency filter finds it.
        audit.append(
            session,
            keys,
            kind="case",
            agency=codes[case.agency_id],
            body={"case": case.id, "from": "indication", "to": "lapsed", "actor": "schedule"},
        )
    return len(cases)


def delete_cases(
    session: Session, keys: AuditKeys, settings: Settings, now: datetime
) -> Receipt | None:
    """One batch of closed and lapsed cases past their retention, and its receipt."""
    cutoff = now - timedelta(days=settings.case_retention_days)
    repo = CaseRepository(session)
    ids = repo.retention_due(cutoff, BATCH)
    if not ids:
        return None
    repo.delete(ids)
    policy = f"case_retention_days={settings.case_retention_days:g}"
    return _receipt(session, keys, "case", ids, policy=policy, cutoff=cutoff, now=now)


def delete_job_results(
    session: Session, keys: AuditKeys, settings: Settings, now: datetime
) -> Receipt | None:
    """One batch of match-job results past their expiry (set when the job ran, from
    ``result_retention_days``), and its receipt. The jobs keep their summaries."""
    ids = jobs.expire_results(session, now, BATCH)
    if not ids:
        return None
    policy = f"result_retention_days={settings.result_retention_days:g}"
    return _receipt(session, keys, "job_results", ids, policy=policy, cutoff=now, now=now)


def run(
    factory: sessionmaker[Session], keys: AuditKeys, settings: Settings, now: datetime
) -> tuple[int, list[Receipt]]:
    """Every step to the end, each batch in a transaction of its own: how many indications
    lapsed, and the receipts of what was deleted."""
    lapsed = 0
    while True:
        with session_scope(factory) as session:
            n = lapse(session, keys, now)
        lapsed += n
        if n < LAPSE_BATCH:
            break
    receipts: list[Receipt] = []
    for step in (delete_cases, delete_job_results):
        while True:
            with session_scope(factory) as session:
                receipt = step(session, keys, settings, now)
            if receipt is None:
                break
            receipts.append(receipt)
    return lapsed, receipts
