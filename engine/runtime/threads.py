"""The event loop's default executor (``asyncio.to_thread``) with daemon threads, never joined.

The admin listener probes and counts the journal in threads; with the database frozen such a
call hangs until the server answers again. A ``ThreadPoolExecutor`` is joined by
``asyncio.run`` and again at interpreter exit, so a SIGTERM would log ``engine_stopped`` and
then wait for the database. Here the process exits; the stuck call is abandoned with it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: An idle thread ends after this long without work.
IDLE_SECONDS = 60.0

_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` (asyncio requires one) whose own workers are never used."""

    def __init__(self) -> None:
        super().__init__(thread_name_prefix="loop-executor")
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            self._jobs.put((future, fn, args, kwargs))
            if self._idle < self._jobs.qsize():  # every idle thread may already be taken
                threading.Thread(target=self._work, name="loop-executor", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to wait for: see the module's docstring."""

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            try:
                future, fn, args, kwargs = self._jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    self._idle -= 1
                return
            with self._lock:
                self._idle -= 1
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the awaiting coroutine
                future.set_exception(exc)
