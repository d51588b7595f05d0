"""Structured JSON logs, one event per state change, with ids and never patient data.

Contract 8: events carry message ids, control ids and channel names. The ``redact`` processor
drops keys that could carry patient data unless ``log_patient_data`` is set (debug only).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

#: Keys that may hold patient data; removed from every event unless explicitly allowed.
SENSITIVE_KEYS = frozenset(
    {"payload", "raw", "text", "name", "nir", "ins", "birth_date", "patient"}
)


def _redact(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in SENSITIVE_KEYS & event.keys():
        event[key] = "[redacted]"
    return event


def configure(level: str = "info", patient_data: bool = False) -> None:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if not patient_data:
        processors.append(_redact)
    processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )


def error_fields(exc: BaseException) -> dict[str, str]:
    """An unexpected exception as log fields: its class and where it was raised, not its
    message, which may quote the data being processed (contract 8)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else "?"
    return {"error": type(exc).__name__, "where": where}
