"""MLLP destination: send each message to a peer over TCP and wait for its ACK.

One connection per message (opened, used, closed), one deadline for the whole exchange.
``AA``/``CA`` is success (for the message sent: MSA-2 is checked); ``AE``/``CE``, a timeout or
a refused connection are transient (retried with the channel's backoff); ``AR``/``CR`` is
permanent (dead-lettered with the peer's reason). The pipeline waits on the peer (with
``pipeline: thread``, so does intake's commit): keep ``timeout_seconds`` short.

With ``tls``, the peer's certificate is verified against ``tls.ca_file`` and its name
(``tls.server_hostname``, else ``host``), and a client certificate is presented when one is
configured. A TLS failure (an unknown CA, a wrong name, a refused client certificate) is
transient like a refused connection: the reason says which, the message is retried.
"""

from __future__ import annotations

import socket
import ssl
import time

from engine.adapters.mllp_framing import Frame, FrameDecoder, frame
from engine.channels.destinations import MllpDestinationConfig
from engine.errors import (
    DestinationRejected,
    DestinationUnavailable,
    EngineError,
    MessageTooLarge,
)
from engine.hl7v2.reader import Message
from engine.pipeline.delivery import BuildContext, Delivery

MAX_ACK_BYTES = 1024 * 1024


def build(config: MllpDestinationConfig, name: str, context: BuildContext) -> MllpDestination:
    del context  # a peer needs no deployment setting
    tls = None
    if config.tls is not None:  # the files are read here, before any message is sent
        tls = (config.tls.context(), config.tls.server_hostname or config.host)
    return MllpDestination(name, config.host, config.port, config.timeout_seconds, tls)


class MllpDestination:
    transactional = False

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        timeout: float,
        tls: tuple[ssl.SSLContext, str] | None = None,
    ) -> None:
        self.name = name
        self.peer = f"{host}:{port}"
        self.address = (host, port)
        self.timeout = timeout
        #: The client context and the name the peer's certificate must carry.
        self.tls = tls

    def close(self) -> None:
        """Nothing held open between messages."""

    def write(self, delivery: Delivery) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            with self._connect(deadline) as sock:
                sock.sendall(frame(delivery.raw))
                ack = self._read_ack(sock, deadline)
        except ssl.SSLCertVerificationError as exc:
            raise DestinationUnavailable(
                f"MLLP peer {self.peer}: TLS verification of its certificate failed: "
                f"{exc.verify_message}"
            ) from exc
        except ssl.SSLError as exc:  # e.g. our client certificate refused by the peer
            raise DestinationUnavailable(f"MLLP peer {self.peer}: {_tls_failure(exc)}") from exc
        except TimeoutError as exc:
            raise DestinationUnavailable(
                f"MLLP peer {self.peer}: no ACK within {self.timeout:g} s"
            ) from exc
        except OSError as exc:
            raise DestinationUnavailable(f"MLLP peer {self.peer}: {exc.strerror or exc}") from exc
        except MessageTooLarge as exc:  # the peer's answer, not our message
            raise DestinationUnavailable(f"MLLP peer {self.peer}: {exc.reason}") from exc
        try:
            msg = Message(ack.decode("utf-8", errors="replace"))
        except EngineError as exc:
            raise DestinationUnavailable(f"MLLP peer {self.peer} answered no ACK") from exc
        code, text = msg.get("MSA-1"), msg.get("MSA-3")
        sent = delivery.message.get("MSH-10")
        if sent and msg.get("MSA-2") not in ("", sent):  # an answer to another message
            raise DestinationUnavailable(
                f"MLLP peer {self.peer} acknowledged another message (MSA-2)"
            )
        if code in ("AA", "CA"):
            return
        reason = f"MLLP peer {self.peer} answered {code or 'no MSA-1'}" + (
            f": {text}" if text else ""
        )
        if code in ("AR", "CR"):
            raise DestinationRejected(reason)
        raise DestinationUnavailable(reason)

    def _connect(self, deadline: float) -> socket.socket:
        """A connected socket (TLS: handshake done, the peer's certificate verified), within
        the exchange's deadline."""
        sock = socket.create_connection(self.address, timeout=self.timeout)
        if self.tls is None:
            return sock
        context, hostname = self.tls
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            # A session cut without TLS's close_notify is an error, not an empty read.
            return context.wrap_socket(sock, server_hostname=hostname, suppress_ragged_eofs=False)
        except BaseException:
            sock.close()
            raise

    def _read_ack(self, sock: socket.socket, deadline: float) -> bytes:
        """The first frame the peer sends, within one deadline for the whole answer (a peer
        trickling bytes must not hold the pipeline); bytes outside frames count too."""
        decoder = FrameDecoder(MAX_ACK_BYTES)
        received = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            data = sock.recv(65536)
            if not data:
                raise ConnectionResetError(0, "connection closed before the ACK")
            received += len(data)
            if received > MAX_ACK_BYTES:
                raise MessageTooLarge(f"answer over {MAX_ACK_BYTES:,} bytes without an ACK")
            for item in decoder.feed(data):
                if isinstance(item, Frame):
                    return item.payload


def _tls_failure(exc: ssl.SSLError) -> str:
    """What went wrong in a TLS session, in OpenSSL's words (never the message's bytes)."""
    if isinstance(exc, ssl.SSLEOFError):
        # TLS 1.3 checks a client certificate after the client's handshake ended: a peer that
        # refuses ours (or wants one) often just cuts the session.
        return "TLS failed: the peer cut the session (does it require a client certificate?)"
    return f"TLS failed: {exc.reason or exc.library or type(exc).__name__}"
