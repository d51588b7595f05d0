"""What an ACK looks like in each HL7 v2 version: MSH-9, MSA and ERR differ between them.

- MSH-9 has two components (type, trigger) up to v2.3, three (with the message structure)
  from v2.3.1 on. An ACK always names its structure there, even when the trigger is unknown
  (``ACK^^ACK``): a bare ``ACK`` is refused by readers that look the structure up.
- MSA-3 (text message) was withdrawn in v2.7: from then on the text goes in ERR-8 only.
- ERR-1 (error code and location, a CM_ELD) is the only ERR field up to v2.4; from v2.5 on the
  error is in ERR-3 (HL7 table 0357), with the severity (ERR-4), our code (ERR-5) and the user
  message (ERR-8).
"""

from __future__ import annotations

from collections.abc import Sequence

#: A field value: text, components, or components holding subcomponents.
Component = str | Sequence[str]
Value = str | Sequence[Component]

DEFAULT_VERSION = "2.5"


def version_key(version: str) -> tuple[int, ...]:
    """``"2.3.1"`` as ``(2, 3, 1)``; v2.5 for an empty or unreadable version id."""
    try:
        parts = tuple(int(p) for p in version.split("."))
    except ValueError:
        parts = ()
    return parts if parts and parts[0] == 2 else (2, 5)


def message_type(version: str, trigger: str) -> Value:
    """MSH-9 of an ACK answering a message of ``version`` with this trigger event."""
    if version_key(version) < (2, 3, 1):
        return ["ACK", trigger] if trigger else "ACK"
    return ["ACK", trigger, "ACK"]


def msa(version: str, code: str, control_id: str, text: str) -> list[Value]:
    """MSA-1 to MSA-3 (MSA-3 only before v2.7, where it was withdrawn)."""
    if version_key(version) >= (2, 7):
        return [code, control_id]
    return [code, control_id, text]


def err(
    version: str, hl7_code: str, hl7_text: str, severity: str, code: str, text: str
) -> list[Value]:
    """The ERR fields for an error of table 0357 (``hl7_code``), our own ``code`` and
    ``text``."""
    condition = [hl7_code, hl7_text, "HL70357"]
    if version_key(version) < (2, 5):
        # ERR-1 CM_ELD: segment id, sequence, field position, then the code as a CE
        # (its parts are subcomponents there).
        return [["", "", "", condition]]
    return [
        "",  # ERR-1, withdrawn since v2.5
        "",  # ERR-2 error location: unknown at this level
        condition,
        severity,
        code,  # ERR-5 application error code
        "",
        "",
        text,  # ERR-8 user message
    ]
