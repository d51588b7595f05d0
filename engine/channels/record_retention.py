"""``engine.retention`` in ``channels.yaml``: when the daily retention job runs and how much it
purges per transaction (the job: :mod:`engine.store.retention_job`).

Kept free of the job's imports: the channels models load it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RetentionSettings(BaseModel):
    """The daily purge of records whose 10-year retention ended (DOMAIN.md §6)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="run the daily job (the CLI works anyway)")
    at: str = Field(
        default="03:30",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description='time of day, HH:MM in engine.timezone (quote it in YAML: "03:30")',
    )
    batch: int = Field(
        default=100,
        ge=1,
        description="records purged per transaction, a short rest between two (intake waits "
        "one transaction at most: about 0.25 s for 100 records in bench/retention.py)",
    )

    @property
    def hour(self) -> int:
        return int(self.at[:2])

    @property
    def minute(self) -> int:
        return int(self.at[3:])
