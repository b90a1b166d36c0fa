"""A process notices another history of the database (kit/epoch.py): a new timeline (a
point-in-time restore, a promoted standby), a new system (a dump restored into a new cluster),
or WAL that went back (an old copy of the data started in place); never a mere reconnect."""

from __future__ import annotations

from matchhub.kit.epoch import Epoch, EpochWatch


def _watch() -> tuple[EpochWatch, list[tuple[Epoch, Epoch]]]:
    watch, seen = EpochWatch(), []
    watch.listeners.append(lambda old, new: seen.append((old, new)))
    return watch, seen


def test_reconnects_to_the_same_history_change_nothing() -> None:
    watch, seen = _watch()
    first = Epoch(7716457799316678802, 1)
    watch.observe(first, 1000)
    watch.observe(first, 5000)
    watch.observe(first, 5000)  # another connection, no write in between
    assert (seen, watch.changes, watch.known) == ([], 0, first)


def test_a_new_timeline_a_new_system_or_wal_gone_back_is_another_history() -> None:
    watch, seen = _watch()
    first, promoted = Epoch(1, 1), Epoch(1, 2)
    watch.observe(first, 9000)
    watch.observe(promoted, 9100)  # failover or point-in-time restore
    watch.observe(promoted, 4000)  # a copy of the data from before, started in place
    watch.observe(Epoch(2, 1), 100)  # a dump restored into a new cluster
    watch.observe(Epoch(2, 1), 200)
    assert seen == [(first, promoted), (promoted, promoted), (promoted, Epoch(2, 1))]
    assert watch.changes == 3


def test_a_failing_listener_does_not_keep_the_others_from_running() -> None:
    watch, seen = _watch()

    def broken(_old: Epoch, _new: Epoch) -> None:
        raise RuntimeError("listener failed")

    watch.listeners.insert(0, broken)
    watch.observe(Epoch(1, 1), 10)
    watch.observe(Epoch(1, 2), 20)
    assert seen == [(Epoch(1, 1), Epoch(1, 2))]
    assert watch.known == Epoch(1, 2)
