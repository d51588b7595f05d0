"""A channel's duplicate policy: when a message reusing a control id is a resend, a new
message, or refused.

A resend repeats the sender, MSH-10 and content of a journaled message: it is answered with
the first answer and not processed again (contract 3). What counts as the same content is
the question. Senders re-serialise when they resend (a trailing space trimmed, CRLF for CR,
the batch envelope dropped, a new MSH-7), so by default the content is compared normalised
(:func:`engine.journal.records.normalised_digest`). A control id reused for a really
different content is refused and kept as a dead letter, unless the channel says to take it as
a new message, or the first use is older than ``reuse_window_seconds`` (senders that reset
their counters). Nothing differing is applied by guess without one of these settings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DuplicatePolicy(BaseModel):
    """How a message reusing a control id (same channel, MSH-3, MSH-4, MSH-10) is told apart
    from a resend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    normalise: bool = Field(
        default=True,
        description=(
            "compare contents ignoring trailing white space, segment terminators (CR, LF, "
            "CRLF), batch envelopes (FHS/BHS/BTS/FTS) and MSH-7; false: byte for byte but MSH-7"
        ),
    )
    reuse_window_seconds: float | None = Field(
        default=None,
        gt=0,
        description=(
            "a control id first used longer ago than this counts as new (senders that reset "
            "their counters); empty: forever"
        ),
    )
    on_reuse: Literal["refuse", "accept_as_new"] = Field(
        default="refuse",
        description=(
            "a different content under a control id in use: refuse (AR, ERR-3 205, dead "
            "letter for review) or accept it as a new message"
        ),
    )


DEFAULT_POLICY = DuplicatePolicy()
