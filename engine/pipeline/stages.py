"""Pipeline stages: errors tagged with the stage where they happened."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, OperationalError

from engine.errors import EngineError, StoreUnavailable, TransformError


class StageError(Exception):
    """An engine error together with the pipeline stage where it happened."""

    def __init__(self, stage: str, error: EngineError) -> None:
        super().__init__(f"{stage}: {error.reason}")
        self.stage = stage
        self.error = error


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Tag errors raised in the block with the pipeline stage, and type database errors."""
    try:
        yield
    except EngineError as exc:
        raise StageError(name, exc) from exc
    except OperationalError as exc:
        unavailable = StoreUnavailable(f"database unavailable: {_first_line(exc)}")
        raise StageError(name, unavailable) from exc
    except DBAPIError as exc:
        rejected = TransformError(f"database rejected the write: {_first_line(exc)}")
        raise StageError(name, rejected) from exc


def _first_line(exc: DBAPIError) -> str:
    """The driver's message without its details: PostgreSQL's DETAIL line quotes the values
    of the row (patient data), which must not reach a reason (contract 8)."""
    return str(exc.orig).split("\n", 1)[0]
