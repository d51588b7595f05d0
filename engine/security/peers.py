"""``allowed_peers``: the IP addresses or CIDR networks a source takes connections from."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import BeforeValidator

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(value: object) -> Network:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    if not isinstance(value, str):
        raise ValueError("an IP address or a CIDR network, e.g. 10.1.2.0/24")
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError as exc:
        raise ValueError(f"not an IP address or CIDR network: {value!r}") from exc


PeerNetwork = Annotated[Network, BeforeValidator(_network)]


def peer_allowed(host: str, allowed: tuple[Network, ...]) -> bool:
    """True when ``allowed`` is empty (no list: every peer) or holds the peer's address.
    An IPv4 peer seen through an IPv6 socket (``::ffff:a.b.c.d``) is compared as IPv4."""
    if not allowed:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in allowed)


def is_loopback(host: str) -> bool:
    """Whether a listener's ``host`` is reachable from this machine only."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
