"""A time limit for user code running in the pipeline's thread.

Python cannot kill a thread, and running each call in a subprocess costs far more than the
20 µs a step may cost. So a watchdog thread looks at the calls in progress every 50 ms and,
once one is past its deadline, raises :class:`Interrupted` inside it
(``PyThreadState_SetAsyncExc``): a loop in Python stops at once. Code waiting in C (a
``sleep``, a socket read) sees the exception only when it returns to Python; the elapsed time
is checked after every call as well, so a late call still fails. The per-call cost is a
dictionary write and two clock reads; the watchdog starts with the first call.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

log = structlog.get_logger("engine.transforms")

POLL_SECONDS = 0.05
T = TypeVar("T")
A = TypeVar("A")


class Interrupted(BaseException):
    """Raised inside a call past its deadline (a BaseException: user code catching
    ``Exception`` does not swallow it)."""


class TooLong(Exception):
    """The call ended after its deadline."""

    def __init__(self, elapsed: float) -> None:
        super().__init__(f"{elapsed:.3f} s")
        self.elapsed = elapsed


@dataclass(slots=True)
class _Call:
    thread_id: int
    deadline: float
    label: str
    fired: bool = False
    landed: bool = False


class Watchdog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[int, _Call] = {}
        self._thread: threading.Thread | None = None

    def call(self, fn: Callable[[A], T], arg: A, limit: float, label: str) -> T:
        """``fn(arg)``, interrupted past ``limit`` seconds (:class:`Interrupted`), or
        :class:`TooLong` when it returned late."""
        tid = threading.get_ident()
        started = time.monotonic()
        call = _Call(tid, started + limit, label)
        with self._lock:
            self._calls[tid] = call
        if self._thread is None or not self._thread.is_alive():
            self._start()
        try:
            result = fn(arg)
        except Interrupted:
            call.landed = True
            self._finish(call)
            raise
        except BaseException:
            self._finish(call)
            raise
        self._finish(call)
        elapsed = time.monotonic() - started
        if elapsed > limit:
            raise TooLong(elapsed)
        return result

    def _finish(self, call: _Call) -> None:
        """Forget the call. An interruption fired but not raised yet (the call returned just
        as its deadline passed) is let land here rather than cancelled: cancelling one
        (``PyThreadState_SetAsyncExc(id, NULL)``) leaves CPython's "async exception" signal
        set for the whole interpreter, and every thread then runs far slower."""
        with self._lock:
            self._calls.pop(call.thread_id, None)
            pending = call.fired and not call.landed
        if pending:
            try:
                while True:  # the signal is set: the exception lands at the next check
                    pass
            except Interrupted:
                call.landed = True

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="step-watchdog", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while True:
            time.sleep(POLL_SECONDS)
            now = time.monotonic()
            with self._lock:
                for call in self._calls.values():
                    if not call.fired and now > call.deadline:
                        call.fired = True
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(
                            ctypes.c_ulong(call.thread_id), ctypes.py_object(Interrupted)
                        )
                        log.warning("step_interrupted", step=call.label)


#: One per process (a forked pipeline process starts its own thread at its first call).
WATCHDOG = Watchdog()
