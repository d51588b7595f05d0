"""The pipeline process's write lock gives up when the engine that holds it is gone."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from engine.routes.pipeline_process import ParentGone, _LockWhileParentLives


def test_the_lock_is_taken_and_given_back_while_the_parent_lives() -> None:
    lock = multiprocessing.get_context("spawn").Lock()
    with _LockWhileParentLives(lock, os.getppid()):
        assert not lock.acquire(block=False)
    assert lock.acquire(block=False)


def test_a_lock_held_by_a_dead_parent_is_given_up_instead_of_waited_for_forever() -> None:
    lock = multiprocessing.get_context("spawn").Lock()
    lock.acquire()  # held by the (killed) parent, never to be released
    dead_parent = os.getppid() + 1_000_000  # not our parent: as after a SIGKILL
    started = time.monotonic()
    with pytest.raises(ParentGone), _LockWhileParentLives(lock, dead_parent):
        pass
    assert time.monotonic() - started < 5
