"""The explicit registry of sources and destinations, by the name used in ``channels.yaml``.

Adding a component means adding its config class here: no import-time magic.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from engine.adapters.amqp import AmqpSourceConfig
from engine.adapters.amqp_destination import AmqpDestinationConfig
from engine.adapters.directory import DirectorySourceConfig
from engine.adapters.file import FileDestinationConfig
from engine.adapters.http import HttpSourceConfig
from engine.adapters.http_destination import HttpDestinationConfig
from engine.adapters.memory import MemoryDestinationConfig
from engine.adapters.mllp import MllpSourceConfig
from engine.adapters.mllp_client import MllpDestinationConfig
from engine.adapters.record_store import RecordStoreConfig

SourceConfig = Annotated[
    MllpSourceConfig | HttpSourceConfig | DirectorySourceConfig | AmqpSourceConfig,
    Field(discriminator="type"),
]
AnyDestination = (
    RecordStoreConfig
    | FileDestinationConfig
    | MllpDestinationConfig
    | AmqpDestinationConfig
    | HttpDestinationConfig
    | MemoryDestinationConfig
)
DestinationConfig = Annotated[AnyDestination, Field(discriminator="type")]
