"""Work items travel packed: the items of one intake commit in one message body, so that the
work queue costs one publish and one publisher confirm per commit, not per message."""

from __future__ import annotations

import pytest

from engine.distributed.items import WorkItem, pack, unpack


def items(*ids: int) -> list[WorkItem]:
    return [WorkItem(i, "lab", f"IPP{i}" if i % 2 else None) for i in ids]


def test_items_are_packed_in_order_up_to_the_size_of_a_body() -> None:
    bodies = list(pack(items(1, 2, 3, 4, 5), 2))
    assert [[i.id for i in unpack(b)] for b in bodies] == [[1, 2], [3, 4], [5]]
    assert [i for b in bodies for i in unpack(b)] == items(1, 2, 3, 4, 5)


def test_a_body_of_one_item_alone_as_earlier_intakes_wrote_it_still_reads() -> None:
    assert unpack(b'[7, "lab", "IPP7"]') == [WorkItem(7, "lab", "IPP7")]
    assert unpack(b'[8, "lab", null]') == [WorkItem(8, "lab", None)]


@pytest.mark.parametrize(
    "body",
    [b"", b"{}", b"[]", b"[[]]", b"[1, 2]", b'[true, "lab", null]', b'[[1, "lab", null], 3]'],
)
def test_anything_else_is_not_a_work_item(body: bytes) -> None:
    with pytest.raises(ValueError, match="work item"):
        unpack(body)
