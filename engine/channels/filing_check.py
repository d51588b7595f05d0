"""A static check of a channels file: channels whose results can never be filed.

Results and documents never create a patient (they are held, 902, until an ADT makes the
patient known). A channel routing results (ORU, MDM, CDA documents) to the record store while
no enabled channel routes ADT there would hold every result forever. All ``record_store``
destinations write the engine's one database, so any channel routing ADT to any of them counts.
Routes whose condition tests fields are taken as possibly matching (no false warning).
"""

from __future__ import annotations

from engine.channels.config import ChannelConfig, ChannelsFile
from engine.transforms.map_hl7 import SUPPORTED_TYPES

_ADT = tuple(sorted(t for t in SUPPORTED_TYPES if t.startswith("ADT^")))
_RESULTS = (*sorted(t for t in SUPPORTED_TYPES if not t.startswith("ADT^")), "CDA^*")


def unfilable_result_channels(config: ChannelsFile) -> list[str]:
    """One warning text per enabled channel that routes results to the record store while no
    enabled channel routes ADT to it."""
    enabled = [c for c in config.channels if c.enabled]
    if any(_routes_to_store(c, _ADT) for c in enabled):
        return []
    return [
        f"channel {c.name!r} routes results to the record store, but no channel routes ADT "
        "there: results are held until an ADT makes their patient known, so every one would "
        "be held forever"
        for c in enabled
        if _routes_to_store(c, _RESULTS)
    ]


def _routes_to_store(channel: ChannelConfig, types: tuple[str, ...]) -> bool:
    """Whether some message of ``types`` may be accepted and routed to a record store."""
    stores = {n for n, d in channel.destinations.items() if d.type == "record_store"}
    for kind in types:
        if not any(_overlap(kind, a) for a in channel.accept):
            continue
        for route in channel.effective_routes():
            wanted = route.when.message_types
            if stores & set(route.to) and (
                wanted is None or any(_overlap(kind, w) for w in wanted)
            ):
                return True
    return False


def _overlap(first: str, second: str) -> bool:
    """Two type^trigger patterns (``*``, ``ORU^*``, ``ORU^R01``) match a common message."""
    if "*" in (first, second) or first == second:
        return True
    kind_a, _, trigger_a = first.partition("^")
    kind_b, _, trigger_b = second.partition("^")
    return kind_a == kind_b and "*" in (trigger_a, trigger_b)
