"""The pipeline's stages: what each one is, the message's work they share, and errors tagged
with the stage where they happened.

A stage is a named unit with one method, ``run(work)``: it reads what the earlier stages left
in :class:`Work` and adds its own part (the parsed payload, each target's form, the record
store's operation and patient), or ends the message early (``work.filtered``). The pipeline
(:mod:`engine.pipeline.pipeline`) runs them in order and tags an error with the stage that
raised it, unless the stage tagged it more finely itself (``destination:<name>``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from engine.errors import EngineError, StoreUnavailable, TransformError
from engine.journal.records import Pending
from engine.pipeline.delivery import Filed, Payload
from engine.transforms.map_hl7 import StoreOperation


class StageError(Exception):
    """An engine error together with the pipeline stage where it happened."""

    def __init__(self, stage: str, error: EngineError) -> None:
        super().__init__(f"{stage}: {error.reason}")
        self.stage = stage
        self.error = error


@dataclass(slots=True)
class Work:
    """One journaled message on its way through the stages, in the pipeline's transaction."""

    conn: Connection
    pending: Pending
    now: datetime
    #: The parse stage's result: the HL7 v2 message or the CDA document received alone.
    parsed: Payload | None = None
    #: The message as the channel's steps left it (``parsed`` until a step changes it).
    payload: Payload | None = None
    #: Why the message ends here (a filter step, no route): its end state is ``filtered``.
    filtered: str = ""
    #: The route stage's result: each target destination's message and bytes.
    forms: dict[str, tuple[Payload, bytes]] = field(default_factory=dict)
    #: The transform stage's result: each record-store target's store operation.
    operations: dict[str, StoreOperation] = field(default_factory=dict)
    #: The identify stage's result: each record-store target's operation and the patient it
    #: is filed under, which the destination writes.
    filed: dict[str, Filed] = field(default_factory=dict)

    @property
    def message(self) -> Payload:
        """The message as the steps left it (the parse stage ran)."""
        assert self.payload is not None
        return self.payload


class Stage(Protocol):
    @property
    def name(self) -> str:
        """The journal's ``error_stage`` of what it raises (unless it tags an error itself)."""

    def run(self, work: Work) -> None:
        """Do this stage's part of ``work``; raise an EngineError (or a StageError)."""


def stage_error(name: str, exc: Exception) -> StageError | None:
    """``exc`` as a StageError of stage ``name``, with database errors typed; None when it is
    not an error the pipeline knows (a bug: the worker dead-letters it as internal)."""
    if isinstance(exc, StageError):
        return exc
    if isinstance(exc, EngineError):
        return StageError(name, exc)
    if isinstance(exc, OperationalError):
        return StageError(name, StoreUnavailable(f"database unavailable: {_first_line(exc)}"))
    if isinstance(exc, DBAPIError):
        return StageError(name, TransformError(f"database rejected the write: {_first_line(exc)}"))
    return None


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Tag errors raised in the block with the pipeline stage, and type database errors."""
    try:
        yield
    except (EngineError, DBAPIError) as exc:
        tagged = stage_error(name, exc)
        assert tagged is not None
        raise tagged from exc


def _first_line(exc: DBAPIError) -> str:
    """The driver's message without its details: PostgreSQL's DETAIL line quotes the values
    of the row (patient data), which must not reach a reason (contract 8)."""
    return str(exc.orig).split("\n", 1)[0]
