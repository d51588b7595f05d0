"""The parse stage: the journaled bytes read back as the message (or CDA document) the other
stages work on, checked against the types the channel accepts (a replayed intake dead letter
may be of a type it refuses: error stage ``accept``, as intake's own check would say). A CDA
document received alone is parsed here, once."""

from __future__ import annotations

from engine.errors import UnsupportedMessageType
from engine.pipeline.payloads import journaled_payload
from engine.pipeline.stages import StageError, Work
from engine.routes.conditions import type_matches


class Parse:
    name = "parse"

    def __init__(self, channel: str, accept: tuple[str, ...]) -> None:
        self.channel = channel
        self.accept = accept

    def run(self, work: Work) -> None:
        pending = work.pending
        msg = journaled_payload(pending.raw, pending.charset)
        kind = f"{msg.message_type}^{msg.trigger}"
        if not type_matches(kind, self.accept):
            refused = UnsupportedMessageType(f"channel {self.channel!r} does not accept {kind}")
            raise StageError("accept", refused)
        work.parsed = work.payload = msg
