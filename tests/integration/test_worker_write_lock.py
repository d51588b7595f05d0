"""A worker sharing a write lock with another process (``engine.pipeline: process``: a
non-reentrant multiprocessing lock) does not take it twice: with nothing to claim it sends the
outbox's due business acknowledgements after it let the lock go, instead of hanging on it."""

from __future__ import annotations

import multiprocessing
import threading

from sqlalchemy import Engine

from engine.channels.loader import parse_channels
from engine.journal.journal import Journal
from engine.pipeline.worker import Worker
from engine.runtime.wiring import build_pipeline

CHANNELS = """
engine: {database_url: "sqlite:///unused.db"}
channels:
  - name: documents
    source: {type: mllp, port: 2575}
    accept: ["ADT^*", "MDM^*"]
    destinations:
      store: {type: record_store}
      lab: {type: mllp, host: 127.0.0.1, port: 9, timeout_seconds: 1}
    routes: [{to: [store]}]
    business_ack: {send_to: [lab], application: PFI-X}
"""


def test_an_idle_batch_with_business_acks_does_not_take_the_shared_lock_twice(
    db: Engine,
) -> None:
    [channel] = parse_channels(CHANNELS).channels
    lock = multiprocessing.get_context("spawn").Lock()
    worker = Worker(db, Journal(db), {channel.name: build_pipeline(channel)}, write_lock=lock)
    assert worker.outbox.pipelines  # the channel writes to the outbox
    handled: list[int] = []
    thread = threading.Thread(target=lambda: handled.append(worker.run_once()), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the worker hangs on its own write lock"
    assert handled == [0]
    assert lock.acquire(timeout=1)  # and it let it go
    lock.release()
    worker.close()
