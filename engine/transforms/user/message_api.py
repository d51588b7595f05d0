"""The message a Python step receives: get and set by path, segments, identity.

Paths are those of ``transform`` operations (:mod:`engine.hl7v2.paths`): ``PID-3[1].1``,
``OBX[*]-5``. Values are plain text: setting one escapes HL7 delimiters, getting one unescapes
them. The message is read lazily; the first write makes an editable copy, which the engine
writes out after the step::

    def normalise_units(msg: HL7Message) -> None:
        for obx in msg.segments("OBX"):
            if obx.get("6.1") == "mg/dl":
                obx.set("6.1", "mg/dL")
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.hl7v2.editable import EditableMessage, EditableSegment
from engine.hl7v2.paths import FieldPath, parse_field_path
from engine.hl7v2.reader import Message
from engine.identity.hl7 import hl7_identity
from engine.identity.model import Identity
from engine.transforms.user import edits


class HL7Message:
    """An HL7 v2 message handed to a Python step."""

    __slots__ = ("_edited", "_original")

    def __init__(self, msg: Message) -> None:
        self._original = msg
        self._edited: EditableMessage | None = None

    # -- reading ---------------------------------------------------------------------------

    @property
    def message_type(self) -> str:
        """MSH-9.1, e.g. ``ORU``."""
        return self.get("MSH-9.1")

    @property
    def trigger(self) -> str:
        """MSH-9.2, e.g. ``R01``."""
        return self.get("MSH-9.2")

    @property
    def control_id(self) -> str:
        """MSH-10."""
        return self.get("MSH-10")

    def get(self, path: str) -> str:
        """The first value at ``path`` (``""`` when absent)."""
        if self._edited is None and path.count("[") == 0:
            return self._original.get(path)  # the lazy reader: no copy for a read
        return self._editable().get(path)

    def get_all(self, path: str) -> list[str]:
        """Every value a path names (``OBX[*]-3.1``: one per OBX)."""
        return self._editable().all_values(parse_field_path(path))

    def identity(self) -> Identity:
        """The patient identity of the first PID (INS, local identifiers, traits), read as the
        engine reads it (:mod:`engine.identity.hl7`)."""
        msg = self.message()
        pid = msg.segment("PID")
        if pid is None:
            raise LookupError("the message has no PID segment")
        return hl7_identity(msg, pid)

    # -- writing ---------------------------------------------------------------------------

    def set(self, path: str, value: str) -> None:
        """Set every place ``path`` names to ``value`` (nothing when its segment is absent)."""
        edits.set_literal(self._editable(), _writable(path), value, only_empty=False)

    def delete(self, path: str) -> None:
        """Blank every place ``path`` names."""
        edits.delete(self._editable(), _writable(path))

    # -- segments --------------------------------------------------------------------------

    def segments(self, name: str | None = None) -> list[Segment]:
        """The segments (called ``name``), in order."""
        msg = self._editable()
        return [Segment(msg, s) for s in msg.segments if name is None or s.name == name]

    def add_segment(
        self,
        name: str,
        fields: Mapping[str, str] | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> Segment:
        """Add a segment after the last ``after`` one, before the first ``before`` one, or at
        the end; ``fields``: position -> value, e.g. ``{"1": "A", "3.2": "B"}``."""
        msg = self._editable()
        values = tuple((parse_field_path(f"{name}-{k}"), v) for k, v in (fields or {}).items())
        return Segment(msg, edits.add_segment(msg, name, values, after, before))

    def remove(self, segment: Segment) -> None:
        """Remove one segment (from :meth:`segments`)."""
        if segment.name == "MSH":
            raise ValueError("the MSH segment cannot be removed")
        self._editable().remove([segment.raw_segment])

    def remove_segments(self, name: str) -> int:
        """Remove every segment called ``name``; returns how many."""
        if name == "MSH":
            raise ValueError("the MSH segment cannot be removed")
        msg = self._editable()
        return msg.remove(msg.named(name))

    # -- for the engine --------------------------------------------------------------------

    @property
    def changed(self) -> bool:
        return self._edited is not None and self._edited.changed

    def message(self) -> Message:
        """The message as it is now."""
        if self._edited is None or not self._edited.changed:
            return self._original
        return self._edited.message()

    def _editable(self) -> EditableMessage:
        if self._edited is None:
            self._edited = EditableMessage(self._original)
        return self._edited


class Segment:
    """One segment of an :class:`HL7Message`; positions are relative: ``"3"``, ``"3[2].1"``."""

    __slots__ = ("_msg", "raw_segment")

    def __init__(self, msg: EditableMessage, seg: EditableSegment) -> None:
        self._msg = msg
        self.raw_segment = seg

    @property
    def name(self) -> str:
        return self.raw_segment.name

    def get(self, position: str) -> str:
        path = parse_field_path(f"{self.name}-{position}")
        return self._msg.value(self.raw_segment, path, path.rep)

    def set(self, position: str, value: str) -> None:
        path = _writable(f"{self.name}-{position}")
        self._msg.set_value(self.raw_segment, path, path.rep, value)

    def __repr__(self) -> str:
        return f"Segment({self.name})"


def _writable(path: str) -> FieldPath:
    parsed = parse_field_path(path)
    if parsed.field in (1, 2) and parsed.segment == "MSH":
        raise ValueError("MSH-1 and MSH-2 hold the delimiters and cannot be edited")
    return parsed
