"""A channel's source, built through the adapters' registry (:mod:`engine.adapters.registry`):
the one way sources are built. The listening ones (MLLP, HTTP) are pausable in place
(:mod:`engine.adapters.pausable`); channel control stops and restarts the others."""

from __future__ import annotations

from engine.adapters.registry import build_source as build_any_source
from engine.channels.config import ChannelConfig
from engine.intake.committer import GroupCommitter
from engine.intake.inbox import Inbox, Source


def build_source(channel: ChannelConfig, committer: GroupCommitter) -> Source:
    """The channel's source, handing what it receives to the channel's inbox."""
    return build_any_source(channel.source, Inbox.for_channel(channel, committer))
