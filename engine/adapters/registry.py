"""The explicit registry of sources and destinations: which runtime object each config model of
``channels.yaml`` builds (:mod:`engine.channels.sources`, :mod:`engine.channels.destinations`).

Adding a component means adding its config model there and its builder here: no import-time
magic, no string-to-class lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.adapters import (
    amqp_destination,
    file,
    http_destination,
    memory,
    mllp_client,
    record_store,
)
from engine.adapters.amqp import AmqpSource
from engine.adapters.directory import DirectorySource
from engine.adapters.pausable import PausableHttpSource, PausableMllpServer
from engine.channels.destinations import (
    AmqpDestinationConfig,
    DestinationConfig,
    FileDestinationConfig,
    HttpDestinationConfig,
    MemoryDestinationConfig,
    MllpDestinationConfig,
    RecordStoreConfig,
)
from engine.channels.sources import (
    AmqpSourceConfig,
    DirectorySourceConfig,
    HttpSourceConfig,
    MllpSourceConfig,
    SourceConfig,
)
from engine.intake.inbox import Inbox, Source
from engine.pipeline.delivery import BuildContext, Destination

#: Builds a source from its config and the channel's inbox.
SourceBuilder = Callable[[Any, Inbox], Source]
#: Builds a destination from its config, its name in the channel and the deployment settings.
DestinationBuilder = Callable[[Any, str, BuildContext], Destination]

SOURCES: dict[type, SourceBuilder] = {
    # The listening sources, pausable in place by channel control.
    MllpSourceConfig: PausableMllpServer,
    HttpSourceConfig: PausableHttpSource,
    DirectorySourceConfig: DirectorySource,
    AmqpSourceConfig: AmqpSource,
}
DESTINATIONS: dict[type, DestinationBuilder] = {
    RecordStoreConfig: record_store.build,
    FileDestinationConfig: file.build,
    MllpDestinationConfig: mllp_client.build,
    AmqpDestinationConfig: amqp_destination.build,
    HttpDestinationConfig: http_destination.build,
    MemoryDestinationConfig: memory.build,
}


def build_source(config: SourceConfig, inbox: Inbox) -> Source:
    """The runtime source ``config`` describes, handing what it receives to ``inbox``."""
    return SOURCES[type(config)](config, inbox)


def build_destination(name: str, config: DestinationConfig, context: BuildContext) -> Destination:
    """The runtime destination ``config`` describes, named ``name`` in its channel."""
    return DESTINATIONS[type(config)](config, name, context)
