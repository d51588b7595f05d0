"""The in-memory twin of the work queue keeps RabbitMQ's promises that the distributed runner
relies on: publish order, at-least-once (a delivery given back or left unacknowledged by a
closed session comes back, in order, ahead of newer ones), and a broker away refuses sessions."""

from __future__ import annotations

import pytest

from engine.distributed.broker import BrokerUnavailable, NoWorkQueue
from engine.distributed.items import WorkItem, unpack
from engine.distributed.memory_broker import MemoryBroker


def items(*ids: int) -> list[WorkItem]:
    return [WorkItem(i, "lab", f"P{i % 2}") for i in ids]


def publish_each(broker: MemoryBroker, *ids: int) -> None:
    """One publish (one body) per item."""
    session = broker.open()
    for i in ids:
        session.publish(items(i))


def ids(broker: MemoryBroker, limit: int = 10) -> list[int]:
    session = broker.open(consume=True)
    got = [i.id for d in session.receive(limit, 0.01) for i in unpack(d.body)]
    session.ack(max(session.out, default=0))
    session.close()
    return got


def test_items_come_out_in_publish_order_in_batches_of_the_limit() -> None:
    broker = MemoryBroker()
    publish_each(broker, 1, 2, 3, 4, 5)
    consumer = broker.open(consume=True)
    first = consumer.receive(3, 0.01)
    assert [i.id for d in first for i in unpack(d.body)] == [1, 2, 3]
    assert [unpack(d.body)[0].id for d in consumer.receive(3, 0.01)] == [4, 5]
    assert consumer.receive(3, 0.01) == []  # idle: nothing more


def test_the_items_of_one_publish_travel_packed_in_bodies_of_at_most_per_body() -> None:
    broker = MemoryBroker(per_body=2)
    broker.open().publish(items(1, 2, 3, 4, 5))
    assert broker.depth() == 5
    got = broker.open(consume=True).receive(10, 0.01)
    assert [[i.id for i in unpack(d.body)] for d in got] == [[1, 2], [3, 4], [5]]


def test_given_back_deliveries_come_back_first_and_in_order() -> None:
    broker = MemoryBroker()
    publish_each(broker, 1, 2, 3, 4)
    consumer = broker.open(consume=True)
    taken = consumer.receive(3, 0.01)
    consumer.ack(taken[0].tag)
    consumer.nack(taken[-1].tag)
    assert ids(broker) == [2, 3, 4]
    assert (broker.published, broker.acked, broker.requeued) == (4, 4, 2)


def test_deliveries_of_a_session_that_closes_unacknowledged_go_to_another() -> None:
    broker = MemoryBroker()
    publish_each(broker, 1, 2, 3)
    killed = broker.open(consume=True)
    assert len(killed.receive(2, 0.01)) == 2
    killed.close()  # a worker killed mid-batch
    assert ids(broker) == [1, 2, 3]


def test_a_broker_away_refuses_sessions_and_loses_the_open_ones() -> None:
    broker = MemoryBroker()
    session = broker.open(consume=True)
    broker.open().publish(items(1))
    assert len(session.receive(1, 0.01)) == 1
    broker.down()
    with pytest.raises(BrokerUnavailable):
        session.ack(1)
    with pytest.raises(BrokerUnavailable):
        broker.open()
    broker.up()
    assert ids(broker) == [1]  # the unacknowledged item came back


def test_a_check_without_declaring_finds_no_work_queue_on_a_fresh_broker() -> None:
    with pytest.raises(NoWorkQueue):
        MemoryBroker().open(declare=False)
    assert MemoryBroker(declared=True).open(declare=False) is not None
