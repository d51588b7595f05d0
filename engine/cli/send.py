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


class UnreadableFile(Exception):
    """A file to send cannot be read: the file is at fault, not the server."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read {path}: {reason}")


def read_all(files: list[Path]) -> list[tuple[Path, bytes]]:
    """Every file's bytes, read before connecting: a missing file is named as such."""
    out = []
    for path in files:
        try:
            out.append((path, path.read_bytes()))
        except OSError as exc:
            raise UnreadableFile(path, exc.strerror or str(exc)) from exc
    return out


def send_files(files: list[Path], host: str, port: int, timeout: float) -> int:
    """Send every message; print each ACK. Returns how many were not accepted. Raises
    :class:`UnreadableFile` (before connecting) or OSError (the server)."""
    failures = 0
    contents = read_all(files)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        for path, data in contents:
            for i, payload in enumerate(split_file(data), 1):
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
