"""The CI-SIS business acknowledgement ``ZAM^Z01`` ("accusé de réception DMP"): sent back to the
sender of a message carrying CDA documents once they are filed (``Y``) or refused (``N``, with
an ERR naming the error code and reason). Sample: ``samples/hl7v2/fr-ans/zam_z01.hl7``.

Its OBX-4 is the MSH-10 of the message it acknowledges; the MSH addresses the original sender.
"""

from __future__ import annotations

from datetime import datetime

from engine.errors import EngineError
from engine.hl7v2.ack import HL7_ERRORS, build_segment, hl7_error_code
from engine.hl7v2.reader import Message

ERR_TEXT_MAX = 200
#: The DMP's own error codes (DOMAIN.md §3); the engine's other codes are its own system.
DMP_CODES = frozenset({"902", "903", "904", "905"})
_OWN_CODES = "AIGUILLAGE"
_OBSERVATION = ["ACK_RECEPTION_DMP", "Accusé de réception DMP", "AckMetierZAM"]


def build_zam(
    original: Message,
    error: EngineError | None,
    now: datetime,
    application: str,
    control_id: str,
) -> str:
    """The ZAM^Z01 for ``original``: ``Y`` when ``error`` is None, else ``N`` and an ERR.
    ``control_id`` is its MSH-10; times are local, as HL7 timestamps without offset read."""
    seps = original.separators
    moment = now.astimezone().strftime("%Y%m%d%H%M%S")
    msh: list[str | list[str]] = [
        [application],  # MSH-3: the engine answers as itself
        original.msh.components(6),  # MSH-4: the facility the message was sent to
        original.msh.components(3),  # MSH-5/6: back to the sender
        original.msh.components(4),
        moment,
        "",
        ["ZAM", "Z01", "ZAM_Z01"],
        control_id,
        original.msh.components(11) or ["P"],
        "2.6",
        "",
        "",
        "",
        "",
        "FRA",
        "UNICODE UTF-8",
        "",
        "",
        ["2.1", "CISIS_CDA_HL7_V2"],
    ]
    answer = "N" if error is not None else "Y"
    segments = [
        build_segment("MSH", msh, seps),
        build_segment("EVN", ["", moment], seps),
        build_segment("OBX", _obx(original.control_id, answer), seps),
    ]
    if error is not None:
        table = hl7_error_code(error.code)
        reason = " ".join(error.reason.split())[:ERR_TEXT_MAX]
        err: list[str | list[str]] = [
            "",
            "",
            [table, HL7_ERRORS[table], "messageErrorCondition"],
            "E",
            [error.code, reason, "DMPERRORCODE" if error.code in DMP_CODES else _OWN_CODES],
        ]
        segments.append(build_segment("ERR", err, seps))
    return "\r".join(segments)


def _obx(control_id: str, answer: str) -> list[str | list[str]]:
    """OBX-3 the acknowledgement, OBX-4 the acknowledged MSH-10, OBX-5 Y or N, OBX-11 F."""
    fields: list[str | list[str]] = ["1", "CWE", _OBSERVATION, control_id]
    fields.append([answer, "", "expandedYes-NoIndicator"])
    return [*fields, "", "", "", "", "", "F"]
