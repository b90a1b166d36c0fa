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
