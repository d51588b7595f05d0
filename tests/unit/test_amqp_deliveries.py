"""What the AMQP source does with one delivery, without a broker: checked through the channel's
inbox and acknowledged once journaled; a fault while checking it requeues it (the broker's
delivery limit decides when to give up, not the first failure), and what the broker
dead-lettered is journaled as a poison message, original bytes kept.

The broker's end is a recording stand-in for pika's channel; the journal's is a committer that
commits each row at once (``tests/integration/test_amqp_source.py`` runs the same against
RabbitMQ)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog
from pika.spec import Basic, BasicProperties

from engine.adapters.amqp import AmqpSource, Session
from engine.channels.sources import AmqpSourceConfig
from engine.intake.inbox import Inbox
from engine.intake.prepared import Prepared
from engine.intake.rules import MessageRules
from engine.journal.records import Appended, NewMessage

ORU = (
    "MSH|^~\\&|LAB|CHU|AIG|CHU|20240306||ORU^R01^ORU_R01|{cid}|P|2.5\r"
    "PID|1||123^^^CHU^PI\rOBR|1\rOBX|1|NM|GLU||4.2"
)
TAG = 7


def oru(cid: str) -> bytes:
    return ORU.format(cid=cid).encode()


class Faulty(MessageRules):
    """Message rules with a bug: they fail on every payload."""

    def prepare(self, payload: bytes, peer: str = "", sender: str = "") -> Prepared:
        raise RuntimeError("a bug in intake")


class Committer:
    """The group committer's ``submit``, committing each row at once."""

    def __init__(self) -> None:
        self.rows: list[NewMessage] = []

    def submit(self, row: NewMessage) -> asyncio.Future[Appended]:
        self.rows.append(row)
        done: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        ack_code = str(row.ack_code)
        done.set_result(Appended(len(self.rows), False, ack_code, row.error_code))
        return done


@dataclass
class Broker:
    """pika's channel, as far as a delivery's settlement goes."""

    is_open: bool = True
    acked: list[int] = field(default_factory=list)
    nacked: list[tuple[int, bool]] = field(default_factory=list)

    def basic_ack(self, delivery_tag: int) -> None:
        self.acked.append(delivery_tag)

    def basic_nack(self, delivery_tag: int, requeue: bool) -> None:
        self.nacked.append((delivery_tag, requeue))


def deliver(rules: MessageRules, body: bytes, *, dead: bool = False) -> tuple[Broker, Committer]:
    """One delivery to the source's queue (``dead``: to its dead-letter queue), settled."""

    async def run() -> tuple[Broker, Committer]:
        committer = Committer()
        inbox = Inbox(rules, committer)  # type: ignore[arg-type]
        session = Session(AmqpSource(AmqpSourceConfig(type="amqp", queue="lab"), inbox))
        broker = Broker()
        method = Basic.Deliver(delivery_tag=TAG, exchange="", routing_key="lab")
        deaths = {"x-death": [{"count": 5, "reason": "delivery_limit"}]}
        props = BasicProperties(headers=deaths if dead else None)
        (session.on_dead if dead else session.on_message)(broker, method, props, body)
        for _ in range(100):  # the journal's task, then its settlement callback
            if broker.acked or broker.nacked:
                break
            await asyncio.sleep(0)
        return broker, committer

    return asyncio.run(run())


def test_a_delivery_is_checked_by_the_inbox_journaled_then_acknowledged() -> None:
    broker, committer = deliver(MessageRules("lab", ("ORU^R01",), "UNICODE UTF-8"), oru("R1"))
    assert (broker.acked, broker.nacked) == ([TAG], [])
    [row] = committer.rows
    assert (row.control_id, row.error_code, row.peer) == ("R1", None, "amqp:-/lab")
    assert row.properties is not None and '"routing_key": "lab"' in row.properties


def test_a_fault_while_checking_a_delivery_requeues_it_and_journals_nothing() -> None:
    with structlog.testing.capture_logs() as logs:
        broker, committer = deliver(Faulty("lab", ("ORU^R01",), "UNICODE UTF-8"), oru("C1"))
    assert [(e["event"], e["error"]) for e in logs] == [("amqp_message_crashed", "RuntimeError")]
    assert (broker.acked, broker.nacked) == ([], [(TAG, True)])
    assert committer.rows == []  # not a dead letter: the broker redelivers it


def test_a_delivery_the_broker_dead_lettered_is_journaled_as_poison_then_acknowledged() -> None:
    broker, committer = deliver(Faulty("lab", ("ORU^R01",), "UNICODE UTF-8"), oru("D1"), dead=True)
    assert (broker.acked, broker.nacked) == ([TAG], [])
    [row] = committer.rows
    assert (row.control_id, row.error_code, row.raw) == ("D1", "poison_message", oru("D1"))
    assert row.error_reason is not None and "after 5 failed deliveries" in row.error_reason
