"""``aiguillage dlq replay`` in a distributed deployment hands the replayed messages to the
workers at once (a work item each); elsewhere it publishes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pika.exceptions import ChannelClosedByBroker
from sqlalchemy import Engine
from typer.testing import CliRunner

from engine.cli.main import app
from engine.db import make_engine
from engine.journal.journal import Journal
from engine.journal.message_tables import State
from engine.journal.records import NewMessage
from engine.migrate import upgrade
from tests.broker import Broker, connect

pytestmark = pytest.mark.postgres

CHANNELS = """\
engine:
  database_url: "{url}"
  work: {{queue: {queue}, broker: {{url: "{amqp}", url_env: AIGUILLAGE_TEST_NO_SUCH_VARIABLE}}}}
channels:
  - name: lab
    source: {{type: mllp, port: 2575}}
    accept: ["ORU^R01"]
    destinations: {{store: {{type: record_store}}}}
"""


def dead_letter(db: Engine) -> int:
    row = NewMessage(channel="lab", raw=b"MSH|^~\\&|A|B|C|D|1||ORU^R01|X1|P|2.5", control_id="X1")
    row.state, row.error_code = State.DEAD_LETTERED, "destination_unavailable"
    with db.connect() as conn:
        return Journal(db).append(conn, [row])[0].id


def replay(tmp_path: Path, url: str, broker: Broker, queue: str, ident: int) -> str:
    config = tmp_path / "channels.yaml"
    config.write_text(CHANNELS.format(url=url, queue=queue, amqp=broker.url))
    result = CliRunner().invoke(app, ["dlq", "replay", str(ident), "--config", str(config)])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def db(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.delenv("AIGUILLAGE_DATABASE_URL", raising=False)
    engine = make_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_a_replay_reaches_the_workers_when_their_queue_exists(
    tmp_path: Path, postgres_url: str, broker: Broker, db: Engine
) -> None:
    queue = broker.name("work")
    with connect() as conn:  # as the intake and the workers declare it
        conn.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    output = replay(tmp_path, postgres_url, broker, queue, dead_letter(db))
    assert "handed 1 message(s) to the workers" in output
    broker.wait_depth(queue, 1)


def test_without_a_work_queue_nothing_is_published(
    tmp_path: Path, postgres_url: str, broker: Broker, db: Engine
) -> None:
    queue = broker.name("work")
    output = replay(tmp_path, postgres_url, broker, queue, dead_letter(db))
    assert "requeued 1 message(s)" in output and "workers" not in output
    with connect() as conn, pytest.raises(ChannelClosedByBroker, match="NOT_FOUND"):
        conn.channel().queue_declare(queue, passive=True)
