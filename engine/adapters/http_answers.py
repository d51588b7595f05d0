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

from engine.adapters.receive import Received
from engine.errors import NotDocumentOwner
from engine.intake.outcomes import EndState
from engine.journal.message_tables import State

STATUS = {"accepted": 202, "duplicate": 200, "rejected": 422, "unavailable": 503}
#: Refusals the pipeline makes on the sender's authority rather than the content's.
FORBIDDEN_CODES = frozenset({NotDocumentOwner.code})

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


def processed(outcome: Received, end: EndState) -> JSONResponse:
    """The answer once the pipeline is done with the message."""
    if end.state in (State.DELIVERED, State.FILTERED):
        status = 200
    elif end.state in (State.HELD, State.REVIEW):
        status = 202  # kept: it waits for its patient, or for an operator
    elif end.code in FORBIDDEN_CODES:
        status = 403  # e.g. a replacement of a document another sender filed
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


def answer(outcome: Received, status: int, close: bool = False) -> JSONResponse:
    content: dict[str, object] = {"status": outcome.status, "message_id": outcome.message_id}
    if outcome.control_id:
        content["control_id"] = outcome.control_id
    if outcome.reason:
        content.update(code=outcome.code, reason=outcome.reason)
    if status == 422 and outcome.code in FORBIDDEN_CODES:
        status = 403
    headers = {"Connection": "close"} if close else None
    return JSONResponse(content, status_code=status, headers=headers)
