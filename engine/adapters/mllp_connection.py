"""One MLLP connection: frames in, each journaled before its ACK goes out, in order.

Each frame is checked by the channel's inbox: inline, in ``data_received`` itself
(:meth:`Inbox.check_inline`: no task or coroutine per message, which measurably costs
throughput), or, for a payload too large for the loop, by a task awaiting :meth:`Inbox.check`.
Once a frame has gone off the loop, the frames after it wait for it (``_chain``) so that the
answers keep the order of the frames.

Reading stops (``pause_reading``) for any of a few reasons at once: too many messages waiting
for their commit, ACKs the peer does not read (the transport's write buffer past
``max_pending_ack_bytes``), or a refusal whose NAK is the last answer before closing.

A connection is idle when it has no frame in progress and nothing waiting for an answer; only
a complete frame or an ACK sent counts as activity, so junk or a trickle keeps no slot. A
started frame must end within ``frame_timeout_seconds``, however its bytes trickle.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import Counter
from collections.abc import Coroutine
from typing import Any, Protocol

import structlog

from engine.adapters.mllp_answers import Answers
from engine.adapters.mllp_framing import JUNK_SAMPLE_MAX, Frame, FrameDecoder, FrameTooLarge, Junk
from engine.adapters.mllp_limits import SUPPRESSED_HEAD, Admission, suppressed_summary
from engine.adapters.mllp_tls import handshake
from engine.channels.sources import MllpSourceConfig
from engine.errors import EngineError, FramingError, SourceBusy
from engine.intake.inbox import Inbox
from engine.intake.prepared import Prepared

log = structlog.get_logger("engine.mllp")

#: A connection with this many messages waiting for their commit stops being read.
MAX_OUTSTANDING = 64


class Listener(Protocol):
    """What a connection shares with the other connections of its listening socket
    (:class:`engine.adapters.mllp.MllpServer`)."""

    config: MllpSourceConfig
    inbox: Inbox
    admission: Admission
    counters: Counter[str]
    tls_context: ssl.SSLContext | None
    #: Bytes of unfinished frames held by all connections.
    buffered: int


class MllpConnection(asyncio.Protocol):
    def __init__(self, server: Listener) -> None:
        self.server = server
        self.config = server.config
        self.decoder = FrameDecoder(server.config.max_message_bytes)
        self.transport: asyncio.Transport | None = None  # once admitted (and TLS done)
        self.host = ""
        self.peer = ""
        self.sender = ""  # the identity a client certificate proved
        self.outstanding = 0
        self.received = 0
        self.junk_bytes = 0
        self.last_activity = 0.0
        self.frame_started: float | None = None
        self._raw: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._pauses: set[str] = set()
        self._admitted = False
        self._closing = False
        self._close_after_nak = ""  # the reason, once a refusal's NAK is the last answer
        self._timer: asyncio.TimerHandle | None = None
        self.answers = Answers(server.inbox, server.config, self)
        self._chain: asyncio.Future[None] | None = None  # the last frame prepared off the loop
        self._suppressed_head = b""
        self._tasks: set[asyncio.Future[None]] = set()

    # -- admission -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._raw = transport
        host, port = transport.get_extra_info("peername")[:2]
        self.host, self.peer = str(host), f"{host}:{port}"
        admission = self.server.admission
        reason = admission.refusal(self.host)
        if reason is not None:
            self._closing = True
            admission.refuse(transport, self.host, reason)
            return
        admission.add(self)
        self._admitted = True
        self.last_activity = self._loop.time()
        self._arm(self.last_activity + self.config.idle_timeout_seconds)
        tls, context = self.config.tls, self.server.tls_context
        if tls is None or context is None:
            self.ready(transport, "")
            return
        transport.pause_reading()  # start_tls takes the socket from here
        timeout = self.config.tls_handshake_timeout_seconds
        self._spawn(handshake(self, self, transport, tls, context, timeout))

    @property
    def closing(self) -> bool:
        return self._closing

    def ready(self, transport: asyncio.Transport, sender: str) -> None:
        """Start reading frames (after the TLS handshake, under TLS)."""
        self.transport, self.sender = transport, sender
        transport.set_write_buffer_limits(high=self.config.max_pending_ack_bytes)
        if self._pauses:
            transport.pause_reading()
        log.info("mllp_connected", channel=self.server.inbox.channel, peer=self.peer)

    def refused(self, reason: str) -> None:
        """Refused after admission (TLS): logged by address, counted, closed."""
        self._closing = True
        self.server.admission.remove(self)
        assert self._raw is not None
        self.server.admission.refuse(self.transport or self._raw, self.host, reason)

    @property
    def idle(self) -> bool:
        """No frame in progress and nothing waiting for an answer: may be closed for room."""
        return (
            self.transport is not None
            and not self._closing
            and self.frame_started is None
            and self.outstanding == 0
        )

    # -- reading ---------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            self._data(data)
        except Exception as exc:  # a bug of ours: close this connection, keep the loop
            log.error("mllp_read_failed", peer=self.peer, error=type(exc).__name__)
            self.server.counters["read_failed"] += 1
            self.close("read_failed")

    def _data(self, data: bytes) -> None:
        if self._closing or self._close_after_nak:
            return
        before = self.decoder.pending_bytes
        too_large: FrameTooLarge | None = None
        try:
            items = self.decoder.feed(data)
        except FrameTooLarge as exc:
            items, too_large = exc.decoded, exc
        self.server.buffered += self.decoder.pending_bytes - before
        self._items(items)
        if self._closing:
            return
        if too_large is not None:
            self.frame_started = None
            self._refuse_frame(too_large.head, too_large, "message_too_large")
            return
        self._track_frame(any(isinstance(i, Frame) for i in items))
        if self.decoder.pending_bytes and self.server.buffered > self.config.max_buffered_bytes:
            busy = SourceBusy("the source holds too many unfinished frames: resend later")
            self._refuse_frame(self._abandon(), busy, "buffer_full")

    def _items(self, items: list[Frame | Junk]) -> None:
        for item in items:
            if self._closing:  # cut off: what follows is only counted
                size = len(item.payload) if isinstance(item, Frame) else item.size
                self.server.admission.charge(self.host, size)
            elif isinstance(item, Frame):
                self.received += 1
                self.last_activity = self._loop.time()
                self._take(item.payload)
            else:
                self._junk(item)

    def _junk(self, item: Junk) -> None:
        self.junk_bytes += item.size
        if item.size <= JUNK_SAMPLE_MAX and not item.sample.strip():
            return  # a stray line break between frames costs nothing
        if not self._charge(item.size, item.sample):
            return
        log.warning("mllp_unframed_bytes", peer=self.peer, bytes=item.size)

    def _track_frame(self, completed: bool) -> None:
        if not self.decoder.in_frame:
            self.frame_started = None
        elif completed or self.frame_started is None:
            self.frame_started = self._loop.time()
            self._arm(self.frame_started + self.config.frame_timeout_seconds)

    def _abandon(self) -> bytes:
        self.server.buffered -= self.decoder.pending_bytes
        self.frame_started = None
        return self.decoder.abandon()

    def _charge(self, size: int, head: bytes) -> bool:
        """Charge a refused payload to the peer; past its budget, cut the connection off.

        A payload larger than the whole byte budget (a refused 15 MB document) is charged as
        the whole budget: it is kept and answered, and the next refusal that minute cuts the
        peer off (abuse.py's "plus one payload")."""
        size = min(size, self.config.junk.max_refused_bytes_per_minute)
        if self.server.admission.charge(self.host, size):
            return True
        if not self._suppressed_head:
            self._suppressed_head = head[:SUPPRESSED_HEAD]
        log.warning(
            "mllp_junk_cut_off",
            peer=self.host,
            backoff_seconds=round(self.server.admission.budget.blocked_for(self.host), 1),
        )
        self.close("junk_budget")
        return False

    # -- journaling and answering ----------------------------------------------------------

    def _take(self, payload: bytes, refused: EngineError | None = None) -> None:
        """Check one frame (inline, or off the loop when large) and journal it; answers keep
        the order of the frames."""
        self.outstanding += 1
        if self.outstanding >= MAX_OUTSTANDING:
            self._pause("outstanding")
        if self._chain is None:
            prepared = self.server.inbox.check_inline(payload, self.peer, self.sender, refused)
            if prepared is not None:
                self._journal(prepared)
                return
        self._chain = self._spawn(self._check_later(self._chain, payload, refused))

    async def _check_later(
        self, previous: asyncio.Future[None] | None, payload: bytes, refused: EngineError | None
    ) -> None:
        """Check a frame off the loop (or one that came after such a frame), and journal it
        once the frame before it is journaled."""
        prepared = await self.server.inbox.check(payload, self.peer, self.sender, refused)
        if previous is not None:
            await asyncio.wait([previous])  # its failure is its own
        if self._chain is asyncio.current_task():
            self._chain = None
        self._journal(prepared)

    def _journal(self, prepared: Prepared) -> None:
        if _junk(prepared) and not self._charge(len(prepared.row.raw), prepared.row.raw):
            self.answered()
            return
        self.answers.journal(prepared)

    def write(self, framed: bytes) -> None:
        """Send one ACK, if the connection is still open."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(framed)
            self.last_activity = self._loop.time()

    def answered(self) -> None:
        """One frame fewer waiting for its answer (sent, or not to be sent)."""
        self.outstanding -= 1
        if self.outstanding < MAX_OUTSTANDING // 2:
            self._resume("outstanding")
        if self._close_after_nak and self.outstanding == 0:
            self.close(self._close_after_nak)  # reading stopped at the refusal: its NAK was last

    def _refuse_frame(self, head: bytes, error: EngineError, reason: str) -> None:
        """Keep the head of a frame as a dead letter, NAK it, and close once it is answered."""
        log.warning("mllp_frame_refused", peer=self.peer, reason=reason, bytes=len(head))
        self.server.counters[f"frames_refused_{reason}"] += 1
        self._pause("closing")
        self._close_after_nak = reason
        self._take(head, error)

    # -- flow control and timers -----------------------------------------------------------

    def _pause(self, reason: str) -> None:
        if not self._pauses and self.transport is not None:
            self.transport.pause_reading()
        self._pauses.add(reason)

    def _resume(self, reason: str) -> None:
        if reason not in self._pauses:
            return
        self._pauses.discard(reason)
        if not self._pauses and self.transport is not None and not self._closing:
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        """The peer leaves ``max_pending_ack_bytes`` of ACKs unread: stop reading from it."""
        self.server.counters["paused_unread_acks"] += 1
        log.info("mllp_paused_unread_acks", peer=self.peer)
        self._pause("writing")

    def resume_writing(self) -> None:
        self._resume("writing")

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            if self._timer.when() <= when:
                return  # fires earlier, and re-arms for what is then due
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closing:
            return
        now, cfg = self._loop.time(), self.config
        if self.frame_started is not None:
            due = self.frame_started + cfg.frame_timeout_seconds
            if now >= due:
                late = FramingError(f"frame not complete within {cfg.frame_timeout_seconds:g} s")
                self._refuse_frame(self._abandon(), late, "frame_timeout")
                return
            self._arm(due)
            return
        due = self.last_activity + cfg.idle_timeout_seconds
        if now >= due and self.idle:
            self.server.counters["closed_idle_timeout"] += 1
            self.close("idle_timeout")
            return
        self._arm(due if now < due else now + cfg.idle_timeout_seconds)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Future[None]:
        task = asyncio.ensure_future(coro)  # kept referenced until done
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- closing ---------------------------------------------------------------------------

    def close(self, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self.server.admission.remove(self)
        log.info("mllp_closing", peer=self.peer, reason=reason, received=self.received)
        transport = self.transport or self._raw
        if transport is not None:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.server.admission.remove(self)
        if not self._admitted:
            return
        if self.decoder.in_frame:
            log.warning("mllp_incomplete_frame_dropped", peer=self.peer)
        self._abandon()
        self._journal_suppressed()
        log.info(
            "mllp_disconnected",
            peer=self.peer,
            received=self.received,
            unframed_bytes=self.junk_bytes,
        )

    def _journal_suppressed(self) -> None:
        """What this peer sent past its budget, as one counted dead letter."""
        counts = self.server.admission.budget.take_suppressed(self.host)
        if not counts[0]:
            return
        log.warning("mllp_junk_suppressed", peer=self.host, payloads=counts[0], bytes=counts[1])
        inbox = self.server.inbox
        prepared = suppressed_summary(
            inbox.rules, self.peer, self.sender, counts, self._suppressed_head
        )
        with contextlib.suppress(RuntimeError):  # the loop is closing: the counters remain
            inbox.record(prepared)


def _junk(prepared: Prepared) -> bool:
    """Whether a payload counts against the peer's junk budget: refused before a control id
    could be read from it, or over a framing limit. A readable message refused for what it
    holds (a type the channel does not take) names its control id in its NAK: a sender
    whose messages are not all taken is not an abusive one."""
    error = prepared.error
    if error is None:
        return False
    return not prepared.row.control_id or isinstance(error, FramingError)
