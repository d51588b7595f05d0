"""MLLP framing, without sockets: ``<VT> payload <FS><CR>``.

The network code feeds whatever ``recv`` returned and gets back whole frames, plus reports of
bytes found outside any frame. Those are never an error (a stray newline, a client that forgot
the framing): the server logs their counts, as contract 7 and STYLE.md §10 ask, and goes on.
Modelled on python-hl7's ``MLLPStreamReader``, minus its exception on the first stray byte.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import FramingError, MessageTooLarge

START_BLOCK = b"\x0b"  # <VT>
END_BLOCK = b"\x1c"  # <FS>
CARRIAGE_RETURN = b"\x0d"  # <CR>

JUNK_SAMPLE_MAX = 8
"""Bytes of junk kept for diagnosis: enough to recognise ``MSH|^~\\&``, too few for a name."""


#: How much of an oversized frame is kept: enough to read its MSH and identify it.
HEAD_MAX = 64 * 1024


@dataclass(frozen=True, slots=True)
class Frame:
    """The payload of one MLLP block, framing bytes removed."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Junk:
    """Bytes discarded outside a frame: how many, and the first few of them.

    ``sample`` may hold message data; log it only where patient data may be logged.
    """

    size: int
    sample: bytes


class FrameTooLarge(MessageTooLarge):
    """A frame outgrew the limit. ``decoded`` holds what the same chunk completed before it,
    which the server must still process (and acknowledge) before it NAKs and closes.
    """

    def __init__(self, reason: str, decoded: list[Frame | Junk], head: bytes = b"") -> None:
        super().__init__(reason)
        self.decoded = decoded
        #: The first bytes of the oversized frame (up to HEAD_MAX), kept as its dead letter.
        self.head = head


class FrameDecoder:
    """Turns a byte stream into frames; amortised O(n), whatever the chunk sizes.

    A frame ends at ``<FS>``; the ``<CR>`` that should follow is consumed when present, even
    when it arrives in the next chunk, and tolerated when missing. A ``<VT>`` inside a frame
    means the sender started over: the unfinished frame is reported as junk.
    """

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError("max_size must be positive")
        self.max_size = max_size
        self._buffer = bytearray()
        self._in_frame = False
        self._after_end = False  # the last chunk ended right after <FS>: a <CR> may follow

    @property
    def in_frame(self) -> bool:
        """Whether a frame has started and not ended (bytes are pending)."""
        return self._in_frame

    @property
    def pending_bytes(self) -> int:
        """Bytes of the unfinished frame held in memory."""
        return len(self._buffer)

    def abandon(self) -> bytes:
        """Drop the unfinished frame (a timeout, a memory limit); returns its first bytes (up
        to HEAD_MAX), to be kept as its dead letter."""
        head = bytes(self._buffer[:HEAD_MAX])
        self._buffer = bytearray()
        self._in_frame = False
        return head

    def feed(self, data: bytes) -> list[Frame | Junk]:
        """Consume one chunk; returns the frames it completed and the junk it held, in order.

        Raises :class:`FrameTooLarge` (a :class:`MessageTooLarge`) as soon as the current
        frame's payload exceeds ``max_size`` bytes; the frame is then dropped.
        """
        out: list[Frame | Junk] = []
        pos = 0
        if self._after_end and data:
            self._after_end = False
            if data[0] == CARRIAGE_RETURN[0]:
                pos = 1
        while pos < len(data):
            pos = self._frame_part(data, pos, out) if self._in_frame else self._skip(data, pos, out)
        return out

    def _skip(self, data: bytes, pos: int, out: list[Frame | Junk]) -> int:
        """Outside a frame: report everything up to the next <VT> as junk."""
        start = data.find(START_BLOCK, pos)
        end = len(data) if start == -1 else start
        if end > pos:
            out.append(Junk(end - pos, data[pos : min(end, pos + JUNK_SAMPLE_MAX)]))
        if start == -1:
            return len(data)
        self._in_frame = True
        return start + 1

    def _frame_part(self, data: bytes, pos: int, out: list[Frame | Junk]) -> int:
        """Inside a frame: buffer up to the <FS>, or the whole chunk when it has none."""
        end_block = data.find(END_BLOCK, pos)
        end = len(data) if end_block == -1 else end_block
        restart = data.find(START_BLOCK, pos, end)
        # The limit is checked before a restart <VT> abandons the frame, so that a frame over
        # it is refused whether the <VT> arrives in the same chunk or a later one.
        part_end = end if restart == -1 else restart
        size = len(self._buffer) + part_end - pos
        if size > self.max_size:
            head = bytes(self._buffer[:HEAD_MAX])
            head += data[pos : min(part_end, pos + max(0, HEAD_MAX - len(head)))]
            self._buffer = bytearray()
            self._in_frame = False
            raise FrameTooLarge(
                f"message larger than the {self.max_size}-byte limit "
                f"({size} bytes so far in this MLLP frame)",
                out,
                head,
            )
        if restart != -1:
            head = bytes(self._buffer[:JUNK_SAMPLE_MAX]) or data[pos : pos + JUNK_SAMPLE_MAX]
            out.append(Junk(len(self._buffer) + restart - pos, head[:JUNK_SAMPLE_MAX]))
            self._buffer.clear()
            return restart + 1
        if end_block == -1:
            self._buffer += memoryview(data)[pos:]
            return len(data)
        if self._buffer:
            self._buffer += memoryview(data)[pos:end_block]
            payload = bytes(self._buffer)
            self._buffer = bytearray()
        else:
            payload = data[pos:end_block]
        out.append(Frame(payload))
        self._in_frame = False
        after = end_block + 1
        if after == len(data):
            self._after_end = True
        elif data[after] == CARRIAGE_RETURN[0]:
            after += 1
        return after


def frame(payload: bytes) -> bytes:
    """Wrap a payload in MLLP framing; raises :class:`FramingError` if it holds <VT> or <FS>."""
    if START_BLOCK in payload or END_BLOCK in payload:
        raise FramingError("payload contains an MLLP block character (0x0B or 0x1C)")
    return START_BLOCK + payload + END_BLOCK + CARRIAGE_RETURN
