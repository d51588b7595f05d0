"""Query parameters of message search, shared by search and bulk dead-letter actions."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from engine.journal.search import MessageFilter


class FilterModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str | None = None
    state: str | None = None
    type: str | None = Field(default=None, description='"ORU" or "ORU^R01"')
    control_id: str | None = None
    sender: str | None = Field(default=None, description='as journaled, e.g. "token:lab"')
    error_code: str | None = None
    batch_id: str | None = Field(default=None, description="the HL7 v2 batch (BHS-11...)")
    since: datetime | None = Field(default=None, description="received at or after")
    until: datetime | None = Field(default=None, description="received before")

    def to_filter(self) -> MessageFilter:
        return MessageFilter(
            channel=self.channel,
            state=self.state,
            message_type=self.type,
            control_id=self.control_id,
            sender=self.sender,
            error_code=self.error_code,
            batch_id=self.batch_id,
            since=self.since,
            until=self.until,
        )
