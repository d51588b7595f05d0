"""HTTP destination: POST each message (HL7 v2 or a CDA document) to a receiving system.

A 2xx answer means delivered. 408, 425, 429 and 5xx answers, timeouts and connection or TLS
failures are transient (retried with the channel's backoff). Any other answer (4xx, and 3xx:
redirects are not followed, the URL is wrong) is permanent: the message is dead-lettered with
the status and the first 200 bytes of the reply, so that an operator sees the receiver's own
words. Those bytes go to the journal's dead-letter reason, which holds the same protection as
the message's raw bytes kept beside it, never to the logs; a receiver may echo a value of the
message in its error text, and 200 bytes bound what it can echo.

Authentication: a bearer token read at start from the environment variable the config names
(never the token in ``channels.yaml``), and/or a client certificate (``tls``). Each request
carries ``Idempotency-Key: <channel>:<message id>``, so that a receiver can recognise a retry.
"""

from __future__ import annotations

import os

import httpx

from engine.cda.standalone import CdaPayload
from engine.channels.destinations import HttpDestinationConfig
from engine.errors import DestinationRejected, DestinationUnavailable
from engine.pipeline.delivery import BuildContext, Delivery

#: How much of a refusal's body a dead letter quotes.
REPLY_BYTES = 200
_TRANSIENT = frozenset({408, 425, 429})


def build(config: HttpDestinationConfig, name: str, context: BuildContext) -> HttpDestination:
    del context  # a peer needs no deployment setting
    token = None
    if config.bearer_token_env is not None:
        token = os.environ.get(config.bearer_token_env)
        if not token:
            raise ValueError(
                f"destination {name!r}: environment variable {config.bearer_token_env} "
                "(its bearer token) is not set"
            )
    verify = config.tls.context() if config.tls is not None else True
    client = httpx.Client(timeout=config.timeout_seconds, verify=verify, follow_redirects=False)
    return HttpDestination(name, config.url, client, token, config.content_type)


class HttpDestination:
    transactional = False

    def __init__(
        self,
        name: str,
        url: str,
        client: httpx.Client,
        token: str | None = None,
        content_type: str | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.client = client
        self.token = token
        self.content_type = content_type

    def close(self) -> None:
        self.client.close()

    def write(self, delivery: Delivery) -> None:
        headers = {
            "Content-Type": self._content_type(delivery),
            "Idempotency-Key": f"{delivery.channel}:{delivery.message_id}",
        }
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            with self.client.stream("POST", self.url, content=delivery.raw, headers=headers) as r:
                status, head = r.status_code, _first_bytes(r) if r.status_code >= 300 else b""
        except httpx.TimeoutException as exc:
            raise DestinationUnavailable(
                f"HTTP peer {self.url}: no answer within {self.client.timeout.read:g} s"
            ) from exc
        except httpx.HTTPError as exc:  # refused connection, TLS failure, cut answer
            raise DestinationUnavailable(f"HTTP peer {self.url}: {_failure(exc)}") from exc
        if 200 <= status < 300:
            return
        reason = f"HTTP peer {self.url} answered {status}" + (f": {_quoted(head)}" if head else "")
        if status >= 500 or status in _TRANSIENT:
            raise DestinationUnavailable(reason)
        raise DestinationRejected(reason)

    def _content_type(self, delivery: Delivery) -> str:
        if self.content_type is not None:
            return self.content_type
        if isinstance(delivery.message, CdaPayload):
            return "application/xml"
        charset = (delivery.message.get("MSH-18") or "").upper()
        return "application/hl7-v2; charset=" + ("iso-8859-1" if "8859" in charset else "utf-8")


def _first_bytes(response: httpx.Response) -> bytes:
    head = b""
    for chunk in response.iter_raw():
        head += chunk
        if len(head) >= REPLY_BYTES:
            break
    return head[:REPLY_BYTES]


def _quoted(head: bytes) -> str:
    return repr(head.decode("utf-8", errors="replace"))


def _failure(exc: httpx.HTTPError) -> str:
    """What failed, without the request (its body is the message)."""
    cause = exc.__cause__ or exc.__context__
    detail = str(exc) or (type(cause).__name__ if cause is not None else "")
    return f"{type(exc).__name__}" + (f" ({detail})" if detail else "")
