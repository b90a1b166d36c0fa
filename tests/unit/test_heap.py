"""What a serving app keeps out of the collector's way (kit/heap.py), and what it still
collects."""

from __future__ import annotations

import gc
import weakref

from matchhub.kit import heap


class _Node:
    other: object = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_settled_freezes_the_start_and_still_collects_what_serving_makes() -> None:
    before = gc.get_threshold()
    made_before = _cycle()  # garbage from the start: collected, not frozen for good
    with heap.settled():
        assert made_before() is None
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] >= heap.YOUNG
        assert gc.isenabled()
        made_while = _cycle()
        gc.collect()
        assert made_while() is None
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_apps_whose_lives_overlap_leave_the_collector_as_they_found_it() -> None:
    # A starts, B starts, A stops while B serves, then B stops (found in review: each undid
    # what it had seen, so B served unsettled and the process was left settled for good).
    before = gc.get_threshold()
    a, b = heap.settled(), heap.settled()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] >= heap.YOUNG
    b.__exit__(None, None, None)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_process_that_switched_automatic_collection_off_keeps_it_off() -> None:
    before = gc.get_threshold()
    gc.set_threshold(0)
    try:
        with heap.settled():
            assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)
