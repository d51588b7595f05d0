"""``aiguillage check`` compares a channels file's AMQP topology with the real broker."""

from __future__ import annotations

from pathlib import Path

import pika.exceptions
from typer.testing import CliRunner

from engine.cli.main import app
from tests.broker import Broker, connect
from tests.e2e.engine_process import free_port

CHANNELS = """\
channels:
  - name: lab
    source:
      type: amqp
      broker: {{url: "{url}", url_env: AIGUILLAGE_TEST_NO_SUCH_VARIABLE}}
      queue: {queue}
      delivery_limit: 3
    accept: ["ORU^R01"]
    destinations: {{store: {{type: record_store}}}}
"""


def check(tmp_path: Path, url: str, queue: str) -> tuple[int, str]:
    path = tmp_path / "channels.yaml"
    path.write_text(CHANNELS.format(url=url, queue=queue))
    result = CliRunner().invoke(app, ["check", str(path)])
    return result.exit_code, result.output


def test_what_does_not_exist_yet_is_reported_and_is_no_error(
    tmp_path: Path, broker: Broker
) -> None:
    queue = broker.name("lab")
    code, output = check(tmp_path, broker.url, queue)
    assert code == 0, output
    assert f"queue '{queue}' does not exist yet: created at start" in output
    with connect() as conn:  # a check creates nothing
        channel = conn.channel()
        try:
            channel.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            assert exc.reply_code == 404
        else:
            raise AssertionError("the check created the queue")


def test_a_queue_with_other_arguments_is_a_conflict_named_by_the_broker(
    tmp_path: Path, broker: Broker
) -> None:
    queue = broker.name("lab")
    with connect() as conn:
        conn.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "classic"})
    code, output = check(tmp_path, broker.url, queue)
    assert code == 1
    assert f"conflict: channel 'lab': queue '{queue}': PRECONDITION_FAILED" in output
    assert "1 conflict(s) with the broker" in output


def test_a_queue_as_the_engine_declares_it_agrees(tmp_path: Path, broker: Broker) -> None:
    queue = broker.name("lab")
    with connect() as conn:
        conn.channel().queue_declare(
            queue,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": f"{queue}.dead",
                "x-delivery-limit": 3,
            },
        )
    code, output = check(tmp_path, broker.url, queue)
    assert code == 0, output
    assert f"queue '{queue}'" not in output.replace(f"queue '{queue}.dead'", "")


def test_an_unreachable_broker_is_said_and_the_file_still_checks(tmp_path: Path) -> None:
    url = f"amqp://guest:pw-not-shown@127.0.0.1:{free_port()}/%2F"
    code, output = check(tmp_path, url, "q")
    assert code == 0
    assert "unreachable" in output and "pw-not-shown" not in output
