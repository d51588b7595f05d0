"""``engine.record_api`` in channels.yaml: the record listener (DESIGN.md §4: the read side for
professionals and patients, default 127.0.0.1:8091). Config only: no runtime import."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from engine.security.tls import ServerTls


class RecordApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", description="listening address of the record API")
    port: int = Field(default=8091, ge=1, le=65535)
    tls: ServerTls | None = Field(
        default=None,
        description=(
            "TLS; with client_ca_file, a professional may prove who they are by a client "
            "certificate whose subject carries the RPPS (as a CPS card does)"
        ),
    )
    emergency_minutes: int = Field(
        default=240, ge=1, le=1440, description="how long a bris de glace access lasts"
    )
