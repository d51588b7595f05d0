"""Reference MLLP servers for the ingest benchmark (run as a subprocess by mllp_ingest.py).

``--mode hl7`` (the reference of the issue): python-hl7's asyncio MLLP server
(``hl7.mllp.start_hl7_server``, UTF-8, large limit); each message is parsed with ``hl7.parse``
(``readmessage``) and answered with ``message.create_ack()``. Nothing is stored.

``--mode null``: a bare asyncio protocol that answers every frame with one fixed ACK without
reading it. It measures the ceiling of the load client on this machine, not a server.

Prints ``ready <port>`` on stdout once listening; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import hl7
from hl7.mllp import start_hl7_server

START, END = b"\x0b", b"\x1c\r"
LIMIT = 64 * 1024 * 1024
NULL_ACK = (
    START + b"MSH|^~\\&|REF|REF|BENCH|BENCH|20250101000000||ACK^R01^ACK|1|P|2.5\rMSA|AA|1" + END
)


async def handle_hl7(reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
    try:
        while True:
            message = await reader.readmessage()
            writer.writemessage(message.create_ack())
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


class NullProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        buf = self.buffer + data
        frames = buf.count(END)
        if frames:
            buf = buf[buf.rindex(END) + len(END) :]
            self.transport.write(NULL_ACK * frames)
        self.buffer = buf


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=("hl7", "null"), default="hl7")
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    server: asyncio.Server
    if args.mode == "hl7":
        server = await start_hl7_server(
            handle_hl7, "127.0.0.1", args.port, limit=LIMIT, encoding="utf-8"
        )
    else:
        server = await loop.create_server(NullProtocol, "127.0.0.1", args.port)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(f"ready {port}\n")
    sys.stdout.flush()
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
