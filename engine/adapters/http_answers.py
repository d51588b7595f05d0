"""What the HTTP source answers, and which media types each payload kind takes.

``Content-Type`` is checked before the body is read: a CDA must be XML (``application/xml``,
``text/xml``, ``application/hl7-v3+xml`` or any ``application/*+xml``), an HL7 v2 message ER7
text (``x-application/hl7-v2+er7``, ``application/hl7-v2``, ``text/plain``). A request without
one is refused too (415): RFC 9110 lets a server sniff, but guessing is how a PNG got 202.
"""

from __future__ import annotations

import math
from typing import Literal

from starlette.responses import JSONResponse

from engine.intake.inbox import Answer

_MEDIA_TYPES = {
    "cda": frozenset({"application/xml", "text/xml", "application/hl7-v3+xml"}),
    "hl7v2": frozenset({"x-application/hl7-v2+er7", "application/hl7-v2", "text/plain"}),
}


def media_type_accepted(header: str | None, payload: Literal["cda", "hl7v2"]) -> bool:
    media = (header or "").split(";", 1)[0].strip().lower()
    if payload == "cda" and media.startswith("application/") and media.endswith("+xml"):
        return True
    return media in _MEDIA_TYPES[payload]


def refusal(status: int, code: str, reason: str, **headers: str) -> JSONResponse:
    """An answer to a request refused before anything was journaled (or its body read: the
    connection is closed after it, rather than reading on)."""
    body = {"status": "refused", "code": code, "reason": reason}
    return JSONResponse(body, status_code=status, headers={"Connection": "close", **headers})


def unauthorized() -> JSONResponse:
    return refusal(
        401, "unauthorized", "a valid sender token is required", **{"WWW-Authenticate": "Bearer"}
    )


def too_many(retry_after: float) -> JSONResponse:
    return refusal(
        429,
        "too_many_refused",
        "too many refused payloads from this address: wait and send valid ones",
        **{"Retry-After": str(math.ceil(retry_after))},
    )


def answered(answer: Answer, status: int | None = None, close: bool = False) -> JSONResponse:
    """The inbox's answer as JSON, with its HTTP status (``Answer.http_status``) unless
    ``status`` says otherwise (413 for an oversized body, whose head was kept)."""
    end = answer.end
    content: dict[str, object] = {
        "status": str(end.state) if end is not None else answer.status,
        "message_id": answer.message_id,
    }
    if answer.control_id or end is not None:
        content["control_id"] = answer.control_id
    code, reason = (end.code, end.reason) if end is not None else (answer.code, answer.reason)
    if reason or code:
        content.update(code=code, reason=reason)
    headers = {"Connection": "close"} if close else None
    return JSONResponse(content, status_code=status or answer.http_status, headers=headers)
