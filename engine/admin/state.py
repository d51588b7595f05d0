"""What the admin listener asks of the running engine: two small interfaces the runtime
implements (or adapts to), so that the admin app never reaches into the runtime's objects.

A console process (``--role console``) runs without them: health then reports the database
only, channel states are ``unknown`` and control endpoints answer 501.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from engine.channels.config import ChannelsFile
from engine.intake.inbox import Source

#: A channel's state as the runtime sees it.
ChannelState = Literal["running", "paused", "stopped", "failed", "waiting_for_broker"]
UNKNOWN = "unknown"


class SourceStatus(Protocol):
    """One channel's receiving end."""

    @property
    def channel(self) -> str: ...

    @property
    def state(self) -> str:
        """One of :data:`ChannelState`."""

    @property
    def bound(self) -> bool:
        """Its listener is bound (or its consumer subscribed); a paused channel may be."""


class EngineState(Protocol):
    def sources(self) -> Sequence[SourceStatus]: ...

    def broker_connected(self) -> bool | None:
        """Whether the broker the engine needs is connected; None when none is configured."""


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    unchanged: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


class UnknownChannel(LookupError):
    """The channel is not configured in the running engine."""


class ChannelControl(Protocol):
    """Live control of channels, run on the engine's event loop.

    ``pause`` stops taking messages (the listener answers nothing new) while in-flight work
    finishes; ``restart`` rebuilds the channel from the loaded configuration; ``reload``
    validates ``channels.yaml`` first (raising :class:`engine.channels.loader.ConfigError`),
    then restarts only the changed channels. Unknown names raise :class:`UnknownChannel`.
    """

    async def pause(self, channel: str) -> None: ...

    async def resume(self, channel: str) -> None: ...

    async def restart(self, channel: str) -> None: ...

    async def reload(self) -> ReloadOutcome: ...


@dataclass(frozen=True, slots=True)
class StaticSource:
    """A plain :class:`SourceStatus` (tests, and runtimes that snapshot their state)."""

    channel: str
    state: str = "running"
    bound: bool = True


@dataclass
class StaticState:
    """A plain :class:`EngineState`."""

    source_list: list[StaticSource] = field(default_factory=list)
    broker: bool | None = None

    def sources(self) -> Sequence[SourceStatus]:
        return self.source_list

    def broker_connected(self) -> bool | None:
        return self.broker


class RunningEngine(Protocol):
    """What :class:`ServersState` reads of the runtime's ``Engine``."""

    @property
    def config(self) -> ChannelsFile: ...

    @property
    def servers(self) -> Sequence[Source]: ...


class ServersState:
    """An :class:`EngineState` read from a running engine's started sources, for a runtime
    that does not report states of its own yet: a started source is bound and running, an
    enabled channel without one is stopped; no broker state (None)."""

    def __init__(self, engine: RunningEngine) -> None:
        self.engine = engine

    def sources(self) -> Sequence[SourceStatus]:
        started = {s.inbox.channel for s in self.engine.servers}
        return [
            StaticSource(c.name, "running" if c.name in started else "stopped", c.name in started)
            for c in self.engine.config.channels
            if c.enabled
        ]

    def broker_connected(self) -> bool | None:
        return None
