"""A stubborn MLLP test client that resends until acknowledged, as real senders do."""

from __future__ import annotations

import socket
import threading
import time

from engine.adapters.mllp_framing import END_BLOCK, frame
from tests.e2e.hl7_messages import PATIENTS, a28, oru

RESULTS = 2


class Sender(threading.Thread):
    """A stubborn MLLP client: resends its current message until it gets an AA."""

    def __init__(self, port: int, numbers: list[int], acked: set[int], lock: threading.Lock):
        super().__init__(daemon=True)
        self.port, self.numbers, self.acked, self.lock = port, numbers, acked, lock
        self.resends = 0

    def run(self) -> None:
        sock: socket.socket | None = None
        for n in self.numbers:
            while True:
                try:
                    if sock is None:
                        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                    sock.sendall(frame(oru(n, results=RESULTS)))
                    if b"MSA|AA|" not in read_ack(sock):
                        raise ConnectionError("not acknowledged")
                    with self.lock:
                        self.acked.add(n)
                    break
                except OSError:
                    if sock is not None:
                        sock.close()
                    sock = None
                    self.resends += 1
                    time.sleep(0.05)
        if sock is not None:
            sock.close()


def read_ack(sock: socket.socket) -> bytes:
    """Bytes up to the end of the next MLLP frame, or what came before the peer closed."""
    buf = b""
    while END_BLOCK not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def register_patients(port: int, patients: int = PATIENTS) -> None:
    """Send an ADT^A28 for each generated patient (results for unknown patients are held)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        for p in range(patients):
            sock.sendall(frame(a28(p)))
            assert b"MSA|AA|" in read_ack(sock)
