from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from matchhub.fleet.models import BrokerProcess


class FleetRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def announce(self, process: BrokerProcess) -> None:
        self.session.merge(process)
        self.session.flush()

    def seen(self, process_id: str, now: datetime) -> bool:
        """Stamp the heartbeat; False if the row is gone (pruned while this process stalled,
        or a database restored from before it started): the caller announces itself again."""
        result = self.session.execute(
            update(BrokerProcess).where(BrokerProcess.id == process_id).values(seen_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    def live(self, since: datetime) -> dict[str, int]:
        """Processes seen since ``since``, counted by role."""
        stmt = (
            select(BrokerProcess.role, func.count())
            .where(BrokerProcess.seen_at >= since)
            .group_by(BrokerProcess.role)
        )
        return {str(role): int(count) for role, count in self.session.execute(stmt)}

    def all(self) -> Sequence[BrokerProcess]:
        return self.session.scalars(
            select(BrokerProcess).order_by(BrokerProcess.role, BrokerProcess.started_at)
        ).all()

    def forget(self, process_id: str) -> None:
        self.session.execute(delete(BrokerProcess).where(BrokerProcess.id == process_id))

    def prune(self, before: datetime) -> int:
        """Rows of processes not seen since ``before`` (killed, or their host lost)."""
        result = self.session.execute(delete(BrokerProcess).where(BrokerProcess.seen_at < before))
        return int(getattr(result, "rowcount", 0) or 0)
