from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from engine.admin.api.filters import FilterModel
from engine.admin.deps import Conn, Context, Operator, ReadConn, Viewer
from engine.admin.services import messages

router = APIRouter(tags=["messages"])


class SearchQuery(FilterModel):
    patient: str = Field(
        default="",
        description="operator+: an INS, a local id as 000003^^^CHU-X, or 000003 (+ facility)",
    )
    facility: str = Field(default="", description="the local id's authority (CX-4)")
    limit: int = Field(default=50, ge=1, le=messages.MAX_PAGE)
    before_id: int | None = Field(default=None, description="next_before_id of the last page")


@router.get("/messages")
def search_messages(
    conn: ReadConn, ctx: Context, who: Viewer, q: Annotated[SearchQuery, Query()]
) -> dict[str, Any]:
    """Messages newest first; pass ``next_before_id`` as ``before_id`` for the next page (a
    search by patient is logged in the patient's record)."""
    return messages.find_messages(
        conn,
        who,
        q.to_filter(),
        writer=ctx.db,
        patient=q.patient,
        facility=q.facility,
        limit=q.limit,
        before_id=q.before_id,
    )


@router.get("/messages/{message_id}")
def message_detail(conn: ReadConn, who: Viewer, message_id: int) -> dict[str, Any]:
    """Metadata, history with times, attempts and errors, the ACK code sent (no payload)."""
    return messages.message_detail(conn, who, message_id)


@router.get("/messages/{message_id}/payload")
def message_payload(conn: Conn, who: Operator, message_id: int) -> dict[str, Any]:
    """The raw message and its segments (operator and admin; each view is audited)."""
    return messages.message_payload(conn, who, message_id)
