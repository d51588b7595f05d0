"""The adapters' registry builds every source and destination the channel models describe."""

from __future__ import annotations

from typing import get_args

from engine.adapters.memory import MemoryDestination, drop_box
from engine.adapters.pausable import PausableHttpSource, PausableMllpServer
from engine.adapters.registry import DESTINATIONS, SOURCES, build_destination
from engine.channels.destinations import AnyDestination, MemoryDestinationConfig
from engine.channels.sources import HttpSourceConfig, MllpSourceConfig, SourceConfig
from engine.pipeline.delivery import BuildContext


def test_every_source_model_has_a_builder() -> None:
    (union, _) = get_args(SourceConfig)
    assert set(get_args(union)) == set(SOURCES)


def test_the_listening_sources_are_built_pausable_in_place() -> None:
    """Channel control pauses an MLLP or HTTP source without closing its listener; the runtime
    builds every source through this registry, so these entries are the ones it runs."""
    assert SOURCES[MllpSourceConfig] is PausableMllpServer
    assert SOURCES[HttpSourceConfig] is PausableHttpSource


def test_every_destination_model_has_a_builder() -> None:
    assert set(get_args(AnyDestination)) == set(DESTINATIONS)


def test_a_destination_is_built_from_its_model_under_its_name() -> None:
    config = MemoryDestinationConfig(type="memory", box="registry-test")
    try:
        built = build_destination("copy", config, BuildContext())
        assert isinstance(built, MemoryDestination)
        assert built.name == "copy"
    finally:
        drop_box("registry-test")
