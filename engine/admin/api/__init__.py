"""The operations API under ``/api/v1`` (OpenAPI docs at ``/api/docs`` on the admin listener)."""

from __future__ import annotations

from fastapi import APIRouter

from engine.admin.api import (
    alert_routes,
    audit_routes,
    channel_routes,
    control_routes,
    dead_letter_routes,
    identity_routes,
    message_routes,
    user_routes,
)


def api_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    for module in (
        channel_routes,
        message_routes,
        dead_letter_routes,
        identity_routes,
        control_routes,
        audit_routes,
        alert_routes,
        user_routes,
    ):
        router.include_router(module.router)
    return router
