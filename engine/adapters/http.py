"""HTTP source: ``POST`` a CDA document (or an HL7 v2 message) as the request body.

The answer comes after the journal commit, like an MLLP ACK: ``202`` with the journal id for
an accepted payload, ``200`` for a resend of one already journaled, ``422`` with the reason for
a refused one (kept as a dead letter), ``413`` for an oversized body (its head kept as a dead
letter), ``503`` when the journal cannot store it (nothing kept: send again). With
``respond_after: processing`` the answer waits for the pipeline: ``200`` stored, ``422`` refused
there (schema, CI-SIS, INS) with the reason, ``202`` kept waiting (its patient, a review).
uvicorn serves it on the engine's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Literal

import structlog
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from engine.adapters.receive import Received, receive
from engine.errors import MessageTooLarge
from engine.journal.models import State
from engine.routes.outcomes import EndState

if TYPE_CHECKING:
    from engine.routes.committer import GroupCommitter
    from engine.routes.intake import Intake

log = structlog.get_logger("engine.http")

_STATUS = {"accepted": 202, "duplicate": 200, "rejected": 422, "unavailable": 503}
#: The head of an oversized body kept as its dead letter.
HEAD_MAX = 64 * 1024


class HttpSourceConfig(BaseModel):
    """Receive documents (or messages) as HTTP POST bodies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["http"]
    host: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(ge=1, le=65535)
    path: str = Field(default="/documents", pattern=r"^/[A-Za-z0-9/_.-]*$")
    payload: Literal["cda", "hl7v2"] = Field(
        default="cda", description="what a body holds: a CDA document, or an HL7 v2 message"
    )
    max_message_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1024, description="larger bodies get 413"
    )
    default_charset: str = Field(
        default="UNICODE UTF-8", description="HL7 v2 bodies: MSH-18 assumed when it is empty"
    )
    respond_after: Literal["commit", "processing"] = Field(
        default="commit",
        description=(
            "commit: answer once journaled (202); processing: once the pipeline is done with "
            "it: 200 stored, 422 refused (schema, CI-SIS, INS) with the reason, 202 waiting "
            "for its patient or for identity review"
        ),
    )
    respond_timeout_seconds: float = Field(
        default=10, gt=0, description="respond_after processing: past this, 202 (kept)"
    )
    always_ack: ClassVar[bool] = True

    def server(self, intake: Intake, committer: GroupCommitter) -> HttpSource:
        return HttpSource(self, intake, committer)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the engine's loop owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpSource:
    def __init__(self, config: HttpSourceConfig, intake: Intake, committer: GroupCommitter):
        self.config = config
        self.intake = intake
        self.committer = committer
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    def app(self) -> FastAPI:
        app = FastAPI(title=f"Aiguillage channel {self.intake.channel}", docs_url=None)
        app.add_api_route(self.config.path, self.handle, methods=["POST"])
        return app

    async def handle(self, request: Request) -> JSONResponse:
        peer = f"{request.client.host}:{request.client.port}" if request.client else "http"
        body = bytearray()
        limit = self.config.max_message_bytes
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                refused = MessageTooLarge(f"body exceeds the {limit:,}-byte limit")
                outcome = await receive(
                    self.intake, self.committer, bytes(body[:HEAD_MAX]), peer, refused
                )
                return _answer(outcome, 413)
        outcome = await receive(self.intake, self.committer, bytes(body), peer)
        if (
            self.config.respond_after == "processing"
            and outcome.status in ("accepted", "duplicate")
            and outcome.message_id is not None
        ):
            timeout = self.config.respond_timeout_seconds
            end = await self.committer.outcome(outcome.message_id, timeout)
            if end is not None:
                return _processed(outcome, end)
        return _answer(outcome, _STATUS[outcome.status])

    async def start(self) -> None:
        # Bound here, so that a port in use is an OSError for the engine (uvicorn would exit).
        sock = socket.create_server((self.config.host, self.config.port), reuse_port=False)
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app(), log_config=None, access_log=False, lifespan="off", server_header=False
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
            await asyncio.sleep(0.01)
        log.info("http_listening", channel=self.intake.channel, port=port)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task


def _processed(outcome: Received, end: EndState) -> JSONResponse:
    """The answer once the pipeline is done with the message."""
    if end.state in (State.DELIVERED, State.FILTERED):
        status = 200
    elif end.state in (State.HELD, State.REVIEW):
        status = 202  # kept: it waits for its patient, or for an operator
    else:
        status = 422
    content: dict[str, object] = {
        "status": str(end.state),
        "message_id": outcome.message_id,
        "control_id": outcome.control_id,
    }
    if end.code:
        content.update(code=end.code, reason=end.reason)
    return JSONResponse(content, status_code=status)


def _answer(outcome: Received, status: int) -> JSONResponse:
    content: dict[str, object] = {"status": outcome.status, "message_id": outcome.message_id}
    if outcome.control_id:
        content["control_id"] = outcome.control_id
    if outcome.reason:
        content.update(code=outcome.code, reason=outcome.reason)
    return JSONResponse(content, status_code=status)
