from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from engine.admin.deps import Conn, Context, Operator, ReadConn, Viewer
from engine.admin.services import identity

router = APIRouter(tags=["identity"])


@router.get("/identity/reviews")
def reviews(conn: ReadConn, _: Viewer, status: str = "open") -> list[dict[str, Any]]:
    """Messages waiting for an identity decision (and notices), oldest first, with their age;
    ``status=all`` for resolved ones too."""
    return identity.reviews(conn, None if status == "all" else status)


@router.get("/identity/reviews/{review_id}/comparison")
def comparison(conn: Conn, who: Operator, review_id: int) -> dict[str, Any]:
    """The message's identity beside each candidate patient (traits: audited)."""
    return identity.comparison(conn, who, review_id)


class Resolution(BaseModel):
    """``patient_id`` files the message under that patient; without it, the message is
    rejected."""

    model_config = ConfigDict(extra="forbid")

    reason: str
    patient_id: int | None = None


@router.post("/identity/reviews/{review_id}/resolve")
def resolve(
    review_id: int, body: Resolution, conn: Conn, ctx: Context, who: Operator
) -> dict[str, Any]:
    return identity.resolve(
        conn, who, review_id, body.reason, body.patient_id, ctx.config.engine.work
    )


@router.get("/identity/held")
def held(conn: ReadConn, _: Viewer, channel: str | None = None) -> list[dict[str, Any]]:
    """Messages held until their patient is known (902), oldest first, with their age."""
    return identity.held(conn, channel)
