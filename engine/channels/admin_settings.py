"""``engine.admin`` in ``channels.yaml``: where the admin listener serves, and its policies.

Kept free of the admin app's imports: the channels models load it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from engine.security.tls import ServerTls


class AdminSettings(BaseModel):
    """The admin listener (console, operations API, ``/metrics``, health checks)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(default=8090, ge=0, le=65535, description="0: any free port")
    metrics_without_auth: bool = Field(
        default=True,
        description="serve /metrics without credentials when the listener is on loopback",
    )
    tls: ServerTls | None = Field(default=None, description="serve HTTPS (TLS 1.2 or later)")
    session_minutes: int = Field(
        default=480, ge=1, description="a console session ends this long after its login"
    )
    max_failed_logins: int = Field(
        default=5, ge=1, description="failed console logins in a row before the account locks"
    )
    lockout_minutes: int = Field(
        default=15, ge=1, description="how long a locked account refuses every password"
    )
    worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description=(
            "--role worker: serve the worker's own /metrics (pipeline histograms) on this port "
            "of `host` (several workers on one machine need one port each)"
        ),
    )
    metrics_refresh_seconds: float = Field(
        default=5.0,
        gt=0,
        description="journal counts behind /metrics and the dashboard are at most this old (longer "
        "while counting takes long: a count is kept 20 times as long as it took)",
    )
