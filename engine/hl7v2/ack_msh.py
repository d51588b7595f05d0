"""The MSH of an ACK: each value echoed from the sender's header cut to its HL7 length and
escaped (:func:`build_segment`), rendered once per sender as a template around MSH-7 and MSH-10
(:func:`msh_segment`: a sender's messages share everything else)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from engine.hl7v2 import ack_shapes
from engine.hl7v2.ack_shapes import Component, Value
from engine.hl7v2.escape import escape
from engine.hl7v2.msh import Header
from engine.hl7v2.separators import Separators

# Field lengths of HL7 v2.5 (chapter 2, data types HD, MSG, PT, VID, ID, ST, TX).
HD_LENGTHS = (20, 199, 6)  # HD.1 namespace id IS(20), HD.2 universal id ST(199), HD.3 ID(6)
TRIGGER_MAX = 3  # MSG.2 trigger event ID(3)
PROCESSING_ID_MAX = 1  # PT.1 processing id ID(1)
VERSION_MAX = 5  # VID.1 version id ID(5)
CHARSET_MAX = 16  # MSH-18 character set ID(16)
_VERSION_ID = re.compile(r"2\.\d{1,2}(\.\d{1,2})?")
#: MSH-12 components after the version id (VID.2 internationalization code, VID.3
#: international version id, e.g. ``2.5^FRA^2.11``): their CE.1 is echoed, cut to this.
VERSION_PART_MAX = 20
DEFAULT_VERSION = ack_shapes.DEFAULT_VERSION


def _join(parts: list[str], separator: str) -> str:
    """Parts joined, trailing empty ones left out."""
    while parts and not parts[-1]:
        parts.pop()
    return separator.join(parts)


def _render(value: Value, seps: Separators) -> str:
    # Most ACK fields are empty: skipping escape() for them halves the cost of an ACK.
    if isinstance(value, str):
        return escape(value, seps) if value else value
    return _join([_render_component(c, seps) for c in value], seps.component)


def _render_component(value: Component, seps: Separators) -> str:
    if isinstance(value, str):
        return escape(value, seps) if value else value
    return _join([escape(s, seps) if s else s for s in value], seps.subcomponent)


def build_segment(name: str, fields: Sequence[Value], seps: Separators) -> str:
    """One segment; each value is escaped, a list is written as components, and a list in a
    list as subcomponents.

    ``fields[0]`` is field 1. For MSH, FHS and BHS the field separator and encoding
    characters (fields 1 and 2) come from ``seps``, and ``fields[0]`` is field 3.
    Trailing empty fields are left out.
    """
    rendered = [_render(f, seps) for f in fields]
    while rendered and not rendered[-1]:
        rendered.pop()
    if name in ("MSH", "FHS", "BHS"):
        rendered.insert(0, seps.encoding_characters)
    return seps.field.join([name, *rendered])


def _hd(value: str) -> list[Component]:
    # Header keeps hierarchic designators as "namespace^universal id^type": three components
    # at most, each cut to its length.
    parts = value.split("^", len(HD_LENGTHS))[: len(HD_LENGTHS)]
    return [part[:size] for part, size in zip(parts, HD_LENGTHS, strict=False)]


def _version(header: Header) -> list[Component]:
    """MSH-12 echoed whole (``2.5^FRA^2.11`` for PAM-FR), each part cut to its length."""
    version, *parts = (header.version_id or header.version).split("^")[:3]
    version = version[:VERSION_MAX]
    if not _VERSION_ID.fullmatch(version):  # no version, or not one (a shifted field)
        return [DEFAULT_VERSION]
    return [version, *(p.split("&", 1)[0][:VERSION_PART_MAX] for p in parts)]


def _msh(header: Header, now: datetime, control_id: str, charset: str) -> list[Value]:
    trigger = header.trigger[:TRIGGER_MAX]
    return [
        _hd(header.receiving_app),  # MSH-3: we answer as the application it addressed
        _hd(header.receiving_facility),
        _hd(header.sending_app),
        _hd(header.sending_facility),
        now.strftime("%Y%m%d%H%M%S"),  # MSH-7
        "",
        ack_shapes.message_type(header.version, trigger),  # MSH-9
        control_id,
        header.processing_id[:PROCESSING_ID_MAX] or "P",
        _version(header),  # MSH-12
        "",
        "",
        "",  # MSH-15/16 empty: an acknowledgment is never acknowledged
        "",
        "",
        charset[:CHARSET_MAX],  # MSH-18: the character set the ACK is written in
    ]


def _charset(header: Header, written_in: str | None) -> str:
    return header.charset if written_in is None else written_in


def msh_segment(header: Header, now: datetime, control_id: str, charset: str | None) -> str:
    """``build_segment("MSH", _msh(...))``, from a template per sender: everything but MSH-7
    and MSH-10 is rendered once for each distinct header (a sender's messages share it)."""
    written_in = _charset(header, charset)
    key = (
        header.separators,
        header.receiving_app,
        header.receiving_facility,
        header.sending_app,
        header.sending_facility,
        header.trigger,
        header.processing_id,
        header.version,
        header.version_id,
        written_in,
    )
    template = _MSH_TEMPLATES.get(key)
    if template is None:
        template = _msh_template(header, written_in)
        if len(_MSH_TEMPLATES) >= MSH_TEMPLATES_MAX:
            _MSH_TEMPLATES.clear()  # many senders (or a fuzzer): start over, stay bounded
        _MSH_TEMPLATES[key] = template
    head, middle, tail = template
    seps = header.separators
    moment = escape(now.strftime("%Y%m%d%H%M%S"), seps)
    return f"{head}{moment}{middle}{escape(control_id, seps)}{tail}"


#: Rendered MSH templates by the header fields an ACK echoes (see :func:`msh_segment`).
_MSH_TEMPLATES: dict[tuple[object, ...], tuple[str, str, str]] = {}
MSH_TEMPLATES_MAX = 4096


def _msh_template(header: Header, charset: str) -> tuple[str, str, str]:
    """The MSH of an ACK to ``header`` cut around MSH-7 and MSH-10: what comes before MSH-7,
    what lies between MSH-7 and MSH-10, and what follows MSH-10."""
    seps = header.separators
    # Both placeholders are written (non-empty) and the processing id after MSH-10 is never
    # empty, so the trailing empty fields build_segment drops all lie after MSH-11.
    rendered = [_render(f, seps) for f in _msh(header, datetime.min, "", charset)]
    while rendered and not rendered[-1]:
        rendered.pop()
    sep = seps.field
    head = sep.join(["MSH", seps.encoding_characters, *rendered[:4]]) + sep
    middle = sep + sep.join(rendered[5:7]) + sep
    tail = sep + sep.join(rendered[8:])
    return head, middle, tail
