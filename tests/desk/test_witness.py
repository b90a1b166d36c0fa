"""The auditor's desk as a witness of the broker's log, against a log made here: a growing log
is accepted, a rollback, a fork, an inconsistent proof and another key each raise an alarm that
stays until acknowledged (which the desk's log records), and acknowledging re-anchors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from matchhub.agency.desk import db, witness
from matchhub.agency.desk.broker import BrokerError
from matchhub.agency.desk.models import Event
from matchhub.protocol import merkle
from matchhub.protocol.checkpoint import format_verifier_key, sign_checkpoint

ORIGIN = "test.matchhub/audit"


class FakeLog:
    """A log of leaves, signed by ``key``; ``proof_of`` may be swapped to lie."""

    def __init__(self, key: Ed25519PrivateKey, leaves: list[bytes]) -> None:
        self.key, self.leaves = key, leaves
        self.tampered_proof = False

    def checkpoint(self) -> dict[str, Any]:
        size = len(self.leaves)
        note = sign_checkpoint(ORIGIN, size, merkle.root(self.leaves), ORIGIN, self.key)
        return {
            "origin": ORIGIN,
            "size": size,
            "note": note,
            "verifier_key": format_verifier_key(ORIGIN, self.key.public_key()),
        }

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        proof = merkle.consistency_proof(old_size, self.leaves[:new_size])
        if self.tampered_proof:
            proof = [bytes(32)] * len(proof)
        return proof


def _leaves(n: int, salt: bytes = b"") -> list[bytes]:
    return [merkle.leaf_hash(salt + str(i).encode()) for i in range(n)]


@pytest.fixture
def database(tmp_path: Path) -> Any:
    database = db.Database(f"sqlite:///{tmp_path / 'desk.db'}")
    db.upgrade(database.engine)
    yield database
    database.close()


def _actions(database: db.Database) -> list[str]:
    with database.transaction() as session:
        return [e.action for e in session.scalars(select(Event).order_by(Event.id))]


def test_a_growing_log_is_verified_and_a_rollback_alarm_stays_until_acknowledged(
    database: db.Database,
) -> None:
    key = Ed25519PrivateKey.generate()
    log = FakeLog(key, _leaves(5))
    first = witness.visit(database, log)
    assert (first.size, first.alarmed) == (5, False)
    log.leaves = _leaves(12)
    assert witness.visit(database, log).size == 12

    log.leaves = _leaves(7)  # the broker's database restored from an older copy
    alarmed = witness.visit(database, log)
    assert alarmed.alarmed
    assert alarmed.alarms[0].reason == "rollback"
    assert alarmed.size == 12  # the accepted checkpoint does not move
    log.leaves = _leaves(20)  # even after the log has grown past it again...
    again = witness.visit(database, log)
    assert [a.reason for a in again.alarms] == ["rollback"]  # ...once, and still there
    assert witness.status(database).alarmed

    with pytest.raises(witness.AcknowledgeError):
        witness.acknowledge(database, again.alarms[0].id, "omar", "ok")  # no real reason
    witness.acknowledge(database, again.alarms[0].id, "omar", "restore drill of 7 December")
    cleared = witness.status(database)
    assert not cleared.alarmed
    assert cleared.size == 7  # re-anchored on the checkpoint it had refused
    assert _actions(database).count("audit.alarm_acknowledged") == 1
    assert "audit.alarm" in _actions(database)
    assert witness.visit(database, log).size == 20


def test_a_fork_an_inconsistent_proof_and_another_key_each_raise_an_alarm(
    database: db.Database,
) -> None:
    key = Ed25519PrivateKey.generate()
    log = FakeLog(key, _leaves(8))
    witness.visit(database, log)
    log.leaves = _leaves(8, salt=b"rewritten")
    assert [a.reason for a in witness.visit(database, log).alarms] == ["fork"]

    other = FakeLog(Ed25519PrivateKey.generate(), _leaves(9))
    reasons = {a.reason for a in witness.visit(database, other).alarms}
    assert reasons - {"fork"}, "a note signed by another key is an alarm"

    forked = witness.status(database).alarms
    for alarm in forked:
        witness.acknowledge(database, alarm.id, "omar", "investigated with the operator")
    # Acknowledging another key's alarm never pins the other key.
    assert witness.visit(database, other).alarmed


def test_an_inconsistent_proof_raises_an_alarm(database: db.Database) -> None:
    log = FakeLog(Ed25519PrivateKey.generate(), _leaves(6))
    witness.visit(database, log)
    log.leaves, log.tampered_proof = _leaves(6) + _leaves(3, salt=b"more"), True
    view = witness.visit(database, log)
    assert [a.reason for a in view.alarms] == ["inconsistent"]
    assert view.size == 6


def test_a_broker_that_cannot_be_reached_is_a_problem_shown_not_an_alarm(
    database: db.Database,
) -> None:
    log = FakeLog(Ed25519PrivateKey.generate(), _leaves(4))
    witness.visit(database, log)

    class Down(FakeLog):
        def checkpoint(self) -> dict[str, Any]:
            raise BrokerError("unreachable", "the broker cannot be reached")

    view = witness.visit(database, Down(log.key, log.leaves))
    assert view.problem == "the broker cannot be reached"
    assert not view.alarmed
    assert view.size == 4


def test_an_edited_record_of_the_accepted_checkpoint_is_an_alarm(database: db.Database) -> None:
    from matchhub.agency.desk.models import AuditWitnessState  # noqa: PLC0415

    log = FakeLog(Ed25519PrivateKey.generate(), _leaves(4))
    witness.visit(database, log)
    with database.transaction() as session:
        state = session.get(AuditWitnessState, witness.STATE_ID)
        assert state is not None
        state.note = state.note.replace("\n4\n", "\n3\n")
    view = witness.visit(database, log)
    assert [a.reason for a in view.alarms] == ["bad_state"]
    witness.acknowledge(database, view.alarms[0].id, "omar", "the desk was restored from tape")
    assert not witness.visit(database, log).alarmed  # re-anchored on the broker's, verified
