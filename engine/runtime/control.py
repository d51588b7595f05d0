"""The running channels: their sources' states, pause/resume/restart, and the reload of
``channels.yaml`` (the admin API, SIGHUP and ``aiguillage reload`` all land in :meth:`reload`).

Implements the admin's :class:`~engine.admin.state.ChannelControl` and
:class:`~engine.admin.state.EngineState`, and the alerts' ``SourceStates``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from engine.adapters.amqp import AmqpSource
from engine.adapters.pausable import PausableHttpSource, PausableMllpServer
from engine.admin.state import ReloadOutcome, SourceStatus, StaticSource, UnknownChannel
from engine.channels.config import ChannelConfig, ChannelsFile
from engine.channels.loader import ConfigError, ConfigIssue, load_channels
from engine.distributed.publisher import WorkPublisher
from engine.intake.committer import GroupCommitter
from engine.intake.inbox import Source
from engine.runtime.listeners import (
    ListenersUnavailable,
    Reservation,
    bind_problem,
    channel_listener,
    channel_owner,
)
from engine.runtime.reload import Plan, plan, write_outcome
from engine.runtime.sources import build_source

log = structlog.get_logger("engine")


class Host(Protocol):
    """What channel control needs of the engine running it (``engine.runtime.wiring.Engine``)."""

    config: ChannelsFile
    config_path: Path | None
    committer: GroupCommitter
    publisher: WorkPublisher | None

    async def replace_pipelines(
        self, changes: Mapping[str, ChannelConfig | None], config: ChannelsFile | None = None
    ) -> None: ...

    async def adopt(self, config: ChannelsFile) -> None: ...


@dataclass
class Runner:
    channel: ChannelConfig
    source: Source | None = None
    #: running, paused, stopped or failed (waiting_for_broker is read from the source).
    state: str = "stopped"


class Channels:
    def __init__(self, engine: Host) -> None:
        self.engine = engine
        self.runners: dict[str, Runner] = {}
        self._lock = asyncio.Lock()  # one control action or reload at a time

    # -- start and stop --------------------------------------------------------------------

    async def start_all(self, reservation: Reservation) -> None:
        """Start every enabled channel; a port that cannot be bound raises
        :class:`ListenersUnavailable` (the caller stops what started)."""
        for channel in self.engine.config.channels:
            if channel.enabled:
                runner = self.runners[channel.name] = Runner(channel)
                await self._start(runner, raise_unbound=True)
                reservation.release(channel_owner(channel.name))

    async def stop_all(self) -> None:
        await asyncio.gather(*(self._stop(r) for r in self.runners.values()))

    def sources(self) -> list[Source]:
        return [r.source for r in self.runners.values() if r.source is not None]

    async def _start(self, runner: Runner, raise_unbound: bool = False) -> None:
        source = build_source(runner.channel, self.engine.committer)
        try:
            await source.start()
        except OSError as exc:
            runner.state = "failed"
            listener = channel_listener(self.engine.config, runner.channel.name)
            log.error("channel_failed", channel=runner.channel.name, error=exc.strerror)
            if listener is None or not raise_unbound:
                raise
            raise ListenersUnavailable([(listener, bind_problem(exc))]) from None
        runner.source, runner.state = source, "running"

    async def _stop(self, runner: Runner, state: str = "stopped") -> None:
        source, runner.source = runner.source, None
        runner.state = state
        if source is not None:
            await source.stop()

    # -- ChannelControl --------------------------------------------------------------------

    def _runner(self, name: str) -> Runner:
        runner = self.runners.get(name)
        if runner is None:
            raise UnknownChannel(name)
        return runner

    async def pause(self, channel: str) -> None:
        async with self._lock:
            runner = self._runner(channel)
            if runner.state != "running":
                return
            if isinstance(runner.source, PausableMllpServer | PausableHttpSource):
                runner.source.pause()
                runner.state = "paused"
            else:  # directory, AMQP: polling ends, the consumer is cancelled
                await self._stop(runner, "paused")
            log.info("channel_paused", channel=channel)

    async def resume(self, channel: str) -> None:
        async with self._lock:
            runner = self._runner(channel)
            if runner.state != "paused":
                return
            if isinstance(runner.source, PausableMllpServer | PausableHttpSource):
                await runner.source.resume()
                runner.state = "running"
            else:
                await self._start(runner)
            log.info("channel_resumed", channel=channel)

    async def restart(self, channel: str) -> None:
        """Rebuild the channel's source and pipeline from the loaded configuration."""
        async with self._lock:
            runner = self._runner(channel)
            await self._stop(runner)
            await self.engine.replace_pipelines({channel: runner.channel})
            await self._start(runner)
            log.info("channel_restarted", channel=channel)

    async def reload(self) -> ReloadOutcome:
        """Validate ``channels.yaml`` (a :class:`ConfigError` changes nothing), then stop the
        removed channels, restart the changed ones and start the added ones; the others are
        not touched. Each outcome (or refusal) is also written for ``aiguillage reload``."""
        async with self._lock:
            try:
                outcome = await self._reload()
            except Exception as exc:
                write_outcome(self.engine.config_path, error=exc)
                raise
            write_outcome(self.engine.config_path, outcome=outcome)
            return outcome

    async def _reload(self) -> ReloadOutcome:
        path = self.engine.config_path
        if path is None:
            raise RuntimeError("this engine was not started from a channels file")
        new = await asyncio.to_thread(load_channels, path)
        old = self.engine.config
        todo = plan(old, new)
        # The ports of added channels, and of changed ones that move: all of them, or nothing.
        try:
            reservation = Reservation.take(new, only={channel_owner(n) for n in todo.new_ports})
        except ListenersUnavailable as exc:  # the file cannot be applied: refused as invalid
            raise ConfigError(
                [ConfigIssue(str(path), 0, "", line) for line in exc.lines()]
            ) from None
        try:
            await self._apply(todo, new)
        finally:
            reservation.release()
        outcome = todo.outcome()
        log.info(
            "channels_reloaded",
            unchanged=list(outcome.unchanged),
            restarted=list(outcome.restarted),
            added=list(outcome.added),
            removed=list(outcome.removed),
        )
        if new.engine != old.engine:
            log.warning("reload_engine_settings_need_restart")
        return outcome

    async def _apply(self, todo: Plan, new: ChannelsFile) -> None:
        leaving = [*todo.removed, *todo.restarted]
        await asyncio.gather(*(self._stop(self.runners[n]) for n in leaving))
        for name in todo.removed:
            del self.runners[name]
        channels = {c.name: c for c in new.channels if c.enabled}
        changes: dict[str, ChannelConfig | None] = {n: None for n in todo.removed}
        changes.update({n: channels[n] for n in (*todo.restarted, *todo.added)})
        await self.engine.replace_pipelines(changes, new)
        await self.engine.adopt(new)
        for name in (*todo.restarted, *todo.added):
            runner = self.runners[name] = Runner(channels[name])
            with contextlib.suppress(OSError):  # logged as channel_failed; the others go on
                await self._start(runner)
        # Keep the configuration's order (the admin lists channels in it).
        self.runners = {
            c.name: self.runners[c.name] for c in new.channels if c.name in self.runners
        }

    # -- EngineState and SourceStates ------------------------------------------------------

    def _state(self, runner: Runner) -> str:
        source = runner.source
        if isinstance(source, AmqpSource) and not source.connected.is_set():
            return "waiting_for_broker"
        return runner.state

    def statuses(self) -> Sequence[SourceStatus]:
        out = []
        for name, runner in self.runners.items():
            state = self._state(runner)
            # A channel an operator paused is not a fault: it keeps the process ready.
            out.append(StaticSource(name, state, state in ("running", "paused")))
        return out

    def broker_connected(self) -> bool | None:
        consumers = [r.source for r in self.runners.values() if isinstance(r.source, AmqpSource)]
        publisher = self.engine.publisher
        if not consumers and publisher is None:
            return None
        publishing = publisher is None or not getattr(publisher, "_outage", 0)
        return publishing and all(s.connected.is_set() for s in consumers)

    def source_up(self, channel: str) -> bool | None:
        runner = self.runners.get(channel)
        if runner is None or runner.state == "paused":
            return None  # not run here, or deliberately down
        return self._state(runner) == "running"


class ChannelsState:
    """The :class:`EngineState` view of :class:`Channels` (its ``sources`` is a method name
    the runtime's list of started sources already uses)."""

    def __init__(self, channels: Channels) -> None:
        self.channels = channels

    def sources(self) -> Sequence[SourceStatus]:
        return self.channels.statuses()

    def broker_connected(self) -> bool | None:
        return self.channels.broker_connected()
