"""engine.heap.settle: what startup built is frozen out of the cyclic collector's walks."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from engine import heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class Node:
    def __init__(self) -> None:
        self.me = self


def test_settle_freezes_what_exists_and_collects_the_young_less_often(restored_gc: None) -> None:
    built_at_start = Node()
    heap.settle()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
    tracked = [o for o in gc.get_objects() if o is built_at_start]
    assert tracked == []  # frozen objects are no longer among those the collector walks


def test_cycles_made_after_settle_are_still_collected(restored_gc: None) -> None:
    heap.settle()
    later = Node()
    del later
    assert gc.collect() >= 1
