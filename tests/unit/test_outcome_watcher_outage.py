"""An answer after processing keeps waiting through a database outage (issue 17): the
outcome poll does not die with the first error, and answers once the database is back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from engine.db import make_engine
from engine.intake import outcomes
from engine.intake.outcomes import OutcomeWatcher
from engine.journal.message_tables import State, messages
from engine.migrate import upgrade


class FlakyDatabase:
    """The real engine, whose first ``failures`` connections fail as during an outage."""

    def __init__(self, db: Engine, failures: int) -> None:
        self.db = db
        self.failures = failures

    def connect(self) -> Connection:
        if self.failures:
            self.failures -= 1
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return self.db.connect()


def _delivered(db: Engine) -> int:
    now = datetime.now(UTC)
    with db.begin() as conn:
        row = {
            "channel": "c",
            "received_at": now,
            "updated_at": now,
            "peer": "",
            "state": State.DELIVERED.value,
            "attempts": 1,
            "ack_code": "AA",
            "charset": "",
            "size": 1,
            "content_hash": "x",
            "raw": b"x",
            "delivered_to": "",
        }
        return int(conn.execute(insert(messages).values(**row)).inserted_primary_key[0])


def test_a_waiter_gets_its_end_state_once_the_database_is_back(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(outcomes, "OUTAGE_SECONDS", 0.01)
    db = make_engine(f"sqlite:///{tmp_path / 'j.db'}")
    upgrade(db)
    message_id = _delivered(db)
    watcher = OutcomeWatcher(FlakyDatabase(db, failures=3))  # type: ignore[arg-type]
    end = asyncio.run(watcher.wait(message_id, timeout=5))
    assert end is not None and end.state is State.DELIVERED
    db.dispose()
