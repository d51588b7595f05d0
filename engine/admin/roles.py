"""Operator roles and the principal a request acts as."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """``viewer`` sees counts and metadata, never payloads or patient traits; ``operator``
    also sees payloads and replays, discards and resolves; ``admin`` also manages users,
    controls channels and reloads the configuration."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who acts: a console user, an API token, or a host login running the CLI."""

    name: str
    role: Role
    kind: str  # "user", "token" or "os"
    #: The console session's CSRF token (forms and unsafe API calls must echo it).
    csrf_token: str | None = None

    @property
    def actor(self) -> str:
        """As the audit trail and the journal record it: ``user:alice``, ``os:root``."""
        return f"{self.kind}:{self.name}"

    @property
    def sees_payloads(self) -> bool:
        return self.role.allows(Role.OPERATOR)


def os_principal() -> Principal:
    """A CLI command run on the host: its operator is the OS login (it holds the database)."""
    import getpass

    return Principal(getpass.getuser(), Role.ADMIN, "os")
