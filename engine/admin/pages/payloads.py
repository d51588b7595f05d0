"""A message's payload for the detail page: the raw bytes and the transformed forms the
journal kept (``journal_transformed``), each split into segments and fields to highlight.

The API shows the raw payload only; the transformed forms are shown here under the same rule
and the same audit row (``view_payload``, written before anything is read).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from engine.admin.roles import Principal
from engine.admin.services.messages import message_payload, payload_view
from engine.journal import transformed


def payload_forms(
    conn: Connection, reader: Connection, who: Principal, message_id: int
) -> list[dict[str, Any]]:
    """``[raw, transformed per destination...]``, each with a ``title``; operator and above
    (the service refuses others and audits the view on ``conn``; the forms are read on
    ``reader``)."""
    raw = message_payload(conn, who, message_id)
    forms = [{"title": "received", **_highlighted(raw)}]
    charset = raw["charset"]
    for destination, body in transformed.forms(reader, message_id).items():
        view = payload_view(body, charset, len(body))
        forms.append({"title": f"sent to {destination}", **_highlighted(view)})
    return forms


def _highlighted(view: dict[str, Any]) -> dict[str, Any]:
    """The view with each segment's fields as ``(name, value)`` pairs (``PID-5``)."""
    text = view["text"]
    separator = text[3] if view["kind"] == "hl7v2" and text.startswith("MSH") else "|"
    segments = [_fields(s["name"], s["text"], separator) for s in view["segments"]]
    return {**view, "segments": segments}


def _fields(name: str, text: str, separator: str) -> dict[str, Any]:
    values = text[4:].split(separator) if len(text) > 3 else []
    first = 2 if name == "MSH" else 1  # MSH-1 is the separator itself
    fields = [(f"{name}-{n}", v) for n, v in enumerate(values, start=first)]
    return {"name": name, "separator": separator, "fields": fields}
