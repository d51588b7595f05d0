"""Intake of CDA documents received alone (directory, HTTP, or MLLP with ``payload: cda``).

What the sender hears about before the document is acknowledged: the bytes are safe,
well-formed XML with a ``ClinicalDocument`` root and an id, the channel accepts its type
(``CDA^<type code>``), and its ``recordTarget`` names one patient. The finer checks (schema,
CI-SIS header, identity rules) run in the pipeline, like those of a carried document.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.cda.standalone import CDA_TYPE, XML_CHARSET, CdaPayload, read_standalone
from engine.channels.conditions import type_matches
from engine.errors import EngineError, UnsupportedMessageType
from engine.hl7v2.ack import AckCode
from engine.hl7v2.header import Header, fallback_header
from engine.journal.records import NewMessage
from engine.routes.intake import Intake, Prepared

if TYPE_CHECKING:
    from engine.channels.models import ChannelConfig


class DocumentIntake(Intake):
    """Intake rules for a channel whose source receives CDA documents alone. Over MLLP the
    answer is still an HL7 ACK, whose MSA-2 is the document id."""

    def prepare(self, payload: bytes, peer: str = "") -> Prepared:
        row = NewMessage(channel=self.channel, raw=payload, peer=peer, charset=XML_CHARSET)
        header = fallback_header()
        try:
            doc = read_standalone(payload)
            header = Header(control_id=doc.header.document_id)
            row.control_id = doc.header.document_id[:255]
            row.message_type = CDA_TYPE
            row.trigger = doc.header.type_code[:16] or None
            kind = f"{CDA_TYPE}^{doc.header.type_code}"
            if not type_matches(kind, self.accept):
                raise UnsupportedMessageType(
                    f"channel {self.channel!r} does not accept {kind} documents"
                )
            row.patient_key = document_patient_key(doc)
        except EngineError as exc:
            return self._reject(row, header, "ascii", exc)
        row.ack_code = AckCode.AA
        return Prepared(row, header, "ascii", None)


def document_patient_key(doc: CdaPayload) -> str | None:
    """``value^OID`` of the recordTarget's first local identifier (the IPP), like the PID-3
    key of a message, else of its INS; None without either. ParseError when it names no single
    patient."""
    identity = doc.identity()
    if identity.local_ids:
        local = identity.local_ids[0]
        return f"{local.value}^{local.authority_oid}"[:255]
    ins = identity.preferred_ins  # INS only (vaccination, imaging...): the INS orders them
    return f"{ins.value}^{ins.oid}" if ins is not None else None


def channel_intake(channel: ChannelConfig) -> Intake:
    """The intake rules for what the channel's source receives."""
    if channel.source.payload == "cda":
        src = channel.source
        return DocumentIntake(channel.name, channel.accept, "UNICODE UTF-8", src.always_ack)
    return Intake.for_channel(channel)
