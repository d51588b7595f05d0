"""MessageRules off the event loop: large payloads are checked in a small, bounded worker pool.

Sources do not call it: each channel's :class:`engine.intake.inbox.Inbox` holds the offload,
asks it whether a payload may be checked on the loop (:meth:`Offload.inline`), and sends it
elsewhere when not (:meth:`Offload.prepare_elsewhere`).

Checking a 15 MB CDA (decoding, base64, a safe XML parse) takes about a second; on the event
loop that second stalls every listener of the process. Payloads above ``INLINE_MAX`` are
prepared in worker threads instead: lxml releases the GIL while it parses, and the engine's
short switch interval (``runtime.SWITCH_INTERVAL``) hands the GIL back to the loop every
0.5 ms during the pure-Python parts. Small payloads (nearly all HL7 v2 messages) stay inline:
a thread hand-off would cost them more than it saves.

The pool is bounded twice: ``WORKERS`` threads (two cores here: more would only queue on the
GIL), and at most ``WORKERS + QUEUED`` payloads handed to it at once per event loop; the
others wait their turn on the loop, where their sources already stop reading (outstanding
caps), so memory stays bounded by the sources' own limits.

A CDA document received alone is only screened at intake (its prolog and header, about
0.5 ms CPU whatever its size): :class:`engine.intake.rules.DocumentRules` keeps documents up
to 1 MB on the loop, where a thread hand-off would cost more than the check.

Payloads of ``PROCESS_MIN`` bytes and more go to a worker *process* instead. Measured here: a
15 MB document of 1.5 M elements parses in a thread with the GIL released, but freeing its
tree (one C call that keeps the GIL) stalled the loop for 90-400 ms; in a process of its own
neither the parse nor the free touches the engine's loop or memory. The process comes from a
``forkserver`` (the engine has threads: ``fork`` would copy their locks), is started at the
first large payload, and is replaced after ``PROCESS_TASKS`` payloads so that its heap never
grows for good. If it cannot be used, the payload is prepared in a thread as before.

Whatever goes wrong while preparing one payload becomes that payload's refusal (a dead letter
and a NAK): no exception may leave a source's callback.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import multiprocessing
import pickle
import threading
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor, ThreadPoolExecutor

import structlog

from engine.errors import EngineError, ParseError
from engine.intake.prepared import Prepared
from engine.intake.rules import MessageRules

log = structlog.get_logger("engine.offload")

#: Payloads up to this size are checked on the event loop (well under a millisecond for HL7).
INLINE_MAX = 64 * 1024
WORKERS = 2
QUEUED = 16

#: After a payload this large, freed memory is handed back to the system (malloc_trim): a
#: parsed 15 MB document leaves ~500 MB of small free blocks that glibc would otherwise keep.
TRIM_AFTER = 1024 * 1024

#: From this size on, payloads are prepared in a worker process (see the module docstring).
PROCESS_MIN = 1024 * 1024
PROCESS_TASKS = 64

_pool: ThreadPoolExecutor | None = None
_processes: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="intake")
        return _pool


def _process_executor() -> ProcessPoolExecutor:
    global _processes
    with _pool_lock:
        if _processes is None:
            _processes = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("forkserver"),
                max_tasks_per_child=PROCESS_TASKS,
            )
        return _processes


def _forget_processes(broken: ProcessPoolExecutor) -> None:
    global _processes
    with _pool_lock:
        if _processes is broken:
            _processes = None
    broken.shutdown(wait=False, cancel_futures=True)


def prepare_safely(
    rules: MessageRules,
    payload: bytes,
    peer: str,
    sender: str = "",
    refused: EngineError | None = None,
) -> Prepared:
    """``rules.prepare`` (or ``prepare_rejected`` for ``refused``), where an unexpected
    exception refuses the payload (``parse_error``, AR) instead of escaping. The reason names
    the exception's class only: its message may quote the payload."""
    if refused is None:
        try:
            return rules.prepare(payload, peer, sender)
        except Exception as exc:  # a bug meeting odd bytes: refuse this payload, not the others
            name = type(exc).__name__
            log.error("intake_failed", channel=rules.channel, peer=peer, error=name)
        refused = ParseError(f"the payload could not be read ({name})")
    return rules.prepare_rejected(payload, peer, refused, sender)


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:  # not glibc: nothing to trim with
        return None


_malloc_trim = _load_trim()


def _prepare_large(rules: MessageRules, payload: bytes, peer: str, sender: str) -> Prepared:
    """Prepare in a pool thread or process, then give back what parsing a large payload
    freed."""
    prepared = prepare_safely(rules, payload, peer, sender)
    if _malloc_trim is not None and len(payload) >= TRIM_AFTER:
        _malloc_trim(0)
    return prepared


class Offload:
    """Prepares payloads inline or in the shared pool, by size."""

    def __init__(self, inline_max: int = INLINE_MAX, queued: int = QUEUED) -> None:
        self.inline_max = inline_max
        self.queued = queued
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate: asyncio.Semaphore | None = None

    def inline(
        self, payload: bytes, refused: EngineError | None = None, rules: MessageRules | None = None
    ) -> bool:
        """Whether this payload is prepared on the loop (refusals cost nothing to prepare).
        ``rules`` may allow more: a document received alone is read up to its header only, at a
        cost that does not grow with its size (``DocumentRules.inline_max``)."""
        limit = max(self.inline_max, getattr(rules, "inline_max", 0))
        return refused is not None or len(payload) <= limit

    async def prepare_elsewhere(
        self, rules: MessageRules, payload: bytes, peer: str, sender: str = ""
    ) -> Prepared:
        """A payload :meth:`inline` declines, prepared in a worker thread (or, from
        ``PROCESS_MIN`` bytes, the worker process), at most ``WORKERS + queued`` at once."""
        loop = asyncio.get_running_loop()
        async with self._semaphore(loop):
            if len(payload) >= PROCESS_MIN:
                prepared = await self._in_process(loop, rules, payload, peer, sender)
                if prepared is not None:
                    return prepared
            return await loop.run_in_executor(
                _executor(), _prepare_large, rules, payload, peer, sender
            )

    @staticmethod
    async def _in_process(
        loop: asyncio.AbstractEventLoop, rules: MessageRules, payload: bytes, peer: str, sender: str
    ) -> Prepared | None:
        """Prepared in the worker process, or None when it cannot be used (then: a thread)."""
        pool = _process_executor()
        try:
            # submit() starts the worker process the first time (~100 ms): not on the loop.
            job = await asyncio.to_thread(pool.submit, _prepare_large, rules, payload, peer, sender)
            return await asyncio.wrap_future(job)
        except (BrokenExecutor, OSError, pickle.PicklingError, RuntimeError) as exc:
            log.warning("intake_process_unavailable", error=type(exc).__name__)
            _forget_processes(pool)
            return None

    def _semaphore(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        # A semaphore belongs to one event loop; tests run several loops in one process.
        if self._gate is None or self._loop is not loop:
            self._loop = loop
            self._gate = asyncio.Semaphore(WORKERS + self.queued)
        return self._gate


#: The offload shared by the inboxes of this process (one bounded pool for every channel).
OFFLOAD = Offload()
