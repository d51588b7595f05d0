"""Service refusals, mapped to HTTP statuses by the API and the pages."""

from __future__ import annotations


class ServiceError(Exception):
    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class NotImplementedHere(ServiceError):
    status = 501


def require_reason(reason: str) -> str:
    if not reason.strip():
        raise ServiceError("a reason is required (it is kept in the audit trail)")
    return reason.strip()
