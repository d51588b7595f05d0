"""``engine.journal_retention`` in ``channels.yaml``: how long ended messages stay in the
journal and how the prune job removes them (the job: :mod:`engine.journal.prune_job`).

Kept free of the job's imports: the channels models load it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class JournalRetention(BaseModel):
    """Delivered, filtered and discarded messages older than ``days`` are pruned; dead letters,
    held messages and messages in review never are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="run the prune job (the CLI works anyway)")
    days: float = Field(
        default=30,
        gt=0,
        description="age (received and last changed) past which an ended message is pruned; a "
        "channel's duplicates.reuse_window_seconds, when longer, wins for its messages",
    )
    batch: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="messages deleted per transaction (short transactions: intake is not stalled)",
    )
    every_minutes: float = Field(
        default=60, gt=0, description="how often the job prunes (first run one period after start)"
    )
