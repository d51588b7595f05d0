"""Cross-reference checks of a channels file, run on the raw YAML data.

They run beside the model validation (not inside it) so that every problem is reported at once,
each at its own key: a pydantic model validator stops at the first problem and can only point at
the model that holds it.
"""

from __future__ import annotations

from typing import Any

Loc = tuple[str | int, ...]


def reference_problems(data: Any) -> list[tuple[Loc, str]]:
    """Duplicate channel names, listening ports used twice, routes naming unknown destinations."""
    channels = data.get("channels") if isinstance(data, dict) else None
    if not isinstance(channels, list):
        return []
    problems: list[tuple[Loc, str]] = []
    names: dict[str, int] = {}
    ports: dict[int, str] = {}
    for i, channel in enumerate(channels):
        if not isinstance(channel, dict):
            continue
        name = channel.get("name")
        if isinstance(name, str):
            if name in names:
                problems.append((("channels", i, "name"), f"channel name {name!r} is used twice"))
            names.setdefault(name, i)
        problems.extend(_port_clash(channel, i, ports))
        problems.extend(_unknown_destinations(channel, i))
    return problems


def _port_clash(channel: dict[str, Any], i: int, ports: dict[int, str]) -> list[tuple[Loc, str]]:
    source = channel.get("source")
    if not isinstance(source, dict) or channel.get("enabled", True) is False:
        return []
    port = source.get("port")
    if not isinstance(port, int):
        return []
    name = str(channel.get("name", f"channels[{i}]"))
    if port in ports:
        message = f"channels {ports[port]!r} and {name!r} both listen on port {port}"
        return [(("channels", i, "source", "port"), message)]
    ports[port] = name
    return []


def _unknown_destinations(channel: dict[str, Any], i: int) -> list[tuple[Loc, str]]:
    declared = channel.get("destinations")
    known = set(declared) if isinstance(declared, dict) else set()
    routes = channel.get("routes")
    lists: list[tuple[Loc, str, object]] = [
        (("channels", i, "routes", r, "to"), f"routes[{r}]", route.get("to"))
        for r, route in enumerate(routes if isinstance(routes, list) else [])
        if isinstance(route, dict)
    ]
    ack = channel.get("business_ack")
    if isinstance(ack, dict):
        lists.append(
            (("channels", i, "business_ack", "send_to"), "business_ack", ack.get("send_to"))
        )
    problems: list[tuple[Loc, str]] = []
    for loc, what, targets in lists:
        names = targets if isinstance(targets, list) else []
        unknown = [t for t in names if isinstance(t, str) and t not in known]
        if unknown:
            listed = ", ".join(sorted(known)) or "none"
            problems.append(
                (
                    loc,
                    f"{what} names destination(s) {', '.join(map(repr, unknown))}, which "
                    f"this channel does not declare (declared: {listed})",
                )
            )
    return problems
