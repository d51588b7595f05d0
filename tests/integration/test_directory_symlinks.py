"""The directory source reads only regular files of its own inbox: a symbolic link, a hard link
or a FIFO dropped there is refused unread (moved to ``error/``, logged by reason), and taken
files are never moved through a link put in place of ``processed/``."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from pydantic import ValidationError

from engine.adapters.inbox_files import RefusedFile, read_head
from engine.channels.sources import DirectorySourceConfig
from tests.integration.inprocess import ENGINE_HEAD, InProcessEngine
from tests.sample_files import CDA_SAMPLES

TSH = CDA_SAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml"
INBOX_CHANNEL = """
  - name: documents_inbox
    source: {{type: directory, path: "{inbox}", poll_seconds: 0.05, settle_seconds: 0}}
    accept: ["CDA^*"]
    destinations: {{store: {{type: record_store}}}}
"""


class InboxEngine(InProcessEngine):
    def __init__(self, tmp: Path) -> None:
        self.inbox = tmp / "inbox"
        self.inbox.mkdir()
        super().__init__(
            ENGINE_HEAD + INBOX_CHANNEL, url=f"sqlite:///{tmp / 'e.db'}", inbox=self.inbox
        )

    def journaled(self) -> int:
        return len(self.rows("SELECT id FROM journal_messages"))


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "not in 10 s"
        time.sleep(0.02)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A genuine document outside the inbox, which the inbox's writers must not get read."""
    folder = tmp_path / "outside"
    folder.mkdir()
    shutil.copy(TSH, folder / "report.xml")
    return folder / "report.xml"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[InboxEngine]:
    eng = InboxEngine(tmp_path)
    yield eng
    eng.stop()


def test_a_symlink_dropped_in_the_inbox_is_refused_unread_and_moved_to_error(
    engine: InboxEngine, outside: Path
) -> None:
    with structlog.testing.capture_logs() as logs:
        (engine.inbox / "host.xml").symlink_to("/etc/hostname")
        (engine.inbox / "report.xml").symlink_to(outside)
        wait_until(lambda: len(list((engine.inbox / "error").glob("*.xml"))) == 2)
        shutil.copy(TSH, engine.inbox / "genuine.xml")  # the source goes on with real files
        wait_until(lambda: engine.journaled() == 1)
    assert os.readlink(engine.inbox / "error" / "host.xml") == "/etc/hostname"
    assert (engine.inbox / "error" / "report.xml").readlink() == outside
    assert outside.read_bytes() == TSH.read_bytes()
    assert engine.rows("SELECT peer FROM journal_messages") == [("file:genuine.xml",)]
    refused = [e for e in logs if e["event"] == "directory_file_refused"]
    assert sorted(e["reason"] for e in refused) == ["symlink", "symlink"]
    assert not any("host.xml" in str(e) or "report.xml" in str(e) for e in logs)


def test_a_hard_link_to_a_file_outside_the_inbox_is_refused_unread(
    engine: InboxEngine, outside: Path
) -> None:
    os.link(outside, engine.inbox / "linked.xml")
    wait_until(lambda: (engine.inbox / "error" / "linked.xml").exists())
    assert engine.journaled() == 0
    assert outside.read_bytes() == TSH.read_bytes()


def test_a_fifo_in_the_inbox_is_refused_without_stopping_the_source(engine: InboxEngine) -> None:
    os.mkfifo(engine.inbox / "pipe.xml")
    wait_until(lambda: (engine.inbox / "error" / "pipe.xml").exists())
    shutil.copy(TSH, engine.inbox / "genuine.xml")
    wait_until(lambda: engine.journaled() == 1)


def test_a_taken_file_is_never_moved_through_a_link_in_place_of_processed(
    engine: InboxEngine, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (engine.inbox / "processed").symlink_to(elsewhere)
    shutil.copy(TSH, engine.inbox / "genuine.xml")
    wait_until(lambda: (engine.inbox / ".taking.genuine.xml").exists() and engine.journaled())
    time.sleep(0.2)  # a few more polls
    assert list(elsewhere.iterdir()) == []
    assert engine.journaled() == 1  # journaled once, left claimed (not taken again)


def test_a_file_swapped_for_a_link_after_the_scan_is_refused_when_opened(
    tmp_path: Path, outside: Path
) -> None:
    (tmp_path / "link.xml").symlink_to(outside)
    os.mkfifo(tmp_path / "pipe.xml")
    os.link(outside, tmp_path / "hard.xml")
    reasons = []
    for name in ("link.xml", "pipe.xml", "hard.xml"):
        with pytest.raises(RefusedFile) as refused:
            read_head(tmp_path / name, 1024)
        reasons.append(refused.value.reason)
    assert reasons == ["symlink", "not_regular", "hard_link"]
    (tmp_path / "hard.xml").unlink()
    assert read_head(outside, 5) == TSH.read_bytes()[:5]


def test_a_pattern_reaching_outside_the_inbox_is_refused_at_load_time(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no '/'"):
        DirectorySourceConfig(type="directory", path=tmp_path, pattern="../*.xml")
