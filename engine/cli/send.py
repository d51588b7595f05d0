"""``aiguillage send``: a small MLLP client for trying channels by hand."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from engine.adapters.mllp_framing import END_BLOCK, frame
from engine.cli.common import console, err_console
from engine.errors import ParseError
from engine.hl7v2.reader import Message

_MESSAGE_START = re.compile(rb"(?:^|\r)(?=MSH[^A-Za-z0-9\r])")


def split_file(data: bytes) -> list[bytes]:
    """Messages of a file: segments on CR/LF/CRLF, a new message at each MSH segment."""
    data = data.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    starts = [m.end() for m in _MESSAGE_START.finditer(data)]
    if not starts:
        return [data.strip(b"\r")] if data.strip() else []
    bounds = [*starts[1:], len(data)]
    return [data[a:b].strip(b"\r") for a, b in zip(starts, bounds, strict=True)]


def send_files(files: list[Path], host: str, port: int, timeout: float) -> int:
    """Send every message; print each ACK. Returns how many were not accepted."""
    failures = 0
    with socket.create_connection((host, port), timeout=timeout) as sock:
        for path in files:
            for i, payload in enumerate(split_file(path.read_bytes()), 1):
                sock.sendall(frame(payload))
                code, text = _ack(_read_frame(sock))
                failures += code not in ("AA", "CA")
                style = "green" if code in ("AA", "CA") else "red"
                console.print(
                    f"{path.name} #{i}: [{style}]{code}[/{style}]" + (f" {text}" if text else ""),
                    highlight=False,
                )
    return failures


def _read_frame(sock: socket.socket) -> bytes:
    buf = b""
    while END_BLOCK not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            err_console.print("connection closed by the server before its ACK")
            return buf
        buf += chunk
    return buf[buf.find(b"\x0b") + 1 : buf.find(END_BLOCK)]


def _ack(payload: bytes) -> tuple[str, str]:
    try:
        msg = Message(payload.decode("utf-8", errors="replace"))
    except ParseError:
        return "??", "unreadable ACK"
    reason = msg.get("ERR-8") or msg.get("MSA-3")
    return msg.get("MSA-1"), reason
