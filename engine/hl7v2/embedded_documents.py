"""CDA documents carried by HL7 v2 (CI-SIS "transmission de documents CDA en HL7 v2",
DOMAIN.md §3): ORU^R01 or MDM^T02/T10/T04 with the CDA base64-encoded in an OBX of type ED.

MDM says what happens by its trigger (T02 initial, T10 replacement, T04 deletion; TXA-12 is
the document, TXA-13 the one it replaces); ORU by OBX-11 (``F`` new, ``C`` correction, ``D``
deletion). Y/N OBX whose OBX-3.3 is ``MetaDMPMSS`` carry the DMP masking flags.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from engine.errors import DocumentError
from engine.hl7v2.reader import Message, Segment

Action = Literal["initial", "replace", "delete"]

_BY_TRIGGER: dict[str, Action] = {"T02": "initial", "T10": "replace", "T04": "delete"}
#: OBX-11 of a document OBX; ``W`` (posted for the wrong patient) withdraws it. Any other
#: status is refused: a document must not be filed on a guess.
_BY_RESULT_STATUS: dict[str, Action] = {
    "F": "initial",
    "C": "replace",
    "D": "delete",
    "W": "delete",
}
_METADATA = "MetaDMPMSS"
#: MetaDMPMSS codes kept as masking flags (the others address MSSanté mail).
MASKING = {
    "MASQUE_PS": "masked_ps",
    "INVISIBLE_PATIENT": "invisible_patient",
    "INVISIBLE_REP_LEGAUX": "invisible_legal_reps",
}


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """One CDA a message carries, with what to do with it."""

    content: bytes
    action: Action
    masked_ps: bool = False
    invisible_patient: bool = False
    invisible_legal_reps: bool = False
    document_number: str = ""  # TXA-12 (MDM): the document this message is about
    parent_number: str = ""  # TXA-13 (MDM T10): the document it replaces
    obx: str = ""  # OBX-1 of the segment that carried it (for error reasons)
    #: The message carried MetaDMPMSS masking flags; without them a replacement keeps the
    #: flags of the version it replaces (a masked document must not become visible).
    masking_given: bool = False


def carries_documents(msg: Message) -> bool:
    """Asked of every result message, at intake and in the pipeline: one substring search
    rules out the usual ORU (no ED value) before any segment is split."""
    field = msg.separators.field
    if f"{field}ED{field}" not in msg.text:
        return False
    comp = msg.separators.component
    return any(_is_cda(obx, comp) for obx in msg.all("OBX"))


def is_document_message(msg: Message) -> bool:
    """A message whose business is its CDA documents: any MDM, an ORU^R01 carrying one."""
    return msg.message_type == "MDM" or (
        msg.message_type == "ORU" and msg.trigger == "R01" and carries_documents(msg)
    )


@dataclass(frozen=True, slots=True)
class CarriedData:
    """One CDA OBX of a message before decoding: what intake screens without decoding it all."""

    obx: str  # OBX-1
    action: Action
    data: str  # OBX-5.5 as sent: Base64 text

    def pieces(self, size: int = 2048) -> Iterator[bytes]:
        """The decoded document in pieces of about ``size`` bytes, decoded only as far as
        they are read; DocumentError when OBX-5.5 is not valid Base64 (checked whole first,
        without decoding, so a bad character past the part read is refused all the same)."""
        text = _padded(self.data)
        if not _plain_base64(text):  # line breaks, junk: decoded whole as the pipeline does
            yield _decode_text(text)
            return
        step = size // 3 * 4
        for start in range(0, len(text), step):
            yield binascii.a2b_base64(text[start : start + step], strict_mode=True)

    def decoded_size(self) -> int:
        """The decoded size of plain Base64 (exact), or an upper bound."""
        text = self.data.strip()
        return len(text) * 3 // 4 - (len(text) - len(text.rstrip("=")))


def carried_data(msg: Message) -> tuple[CarriedData, ...]:
    """Every CDA OBX of the message, undecoded; raises DocumentError for what refuses the
    message whatever the documents hold (another result beside them, no document action, an
    encoding other than Base64)."""
    _refuse_other_results(msg)
    out = []
    comp = msg.separators.component
    for obx in msg.all("OBX"):
        if not _is_cda(obx, comp):
            continue
        if msg.message_type == "MDM":
            action = _BY_TRIGGER.get(msg.trigger, "initial")
        elif obx.get(11) in _BY_RESULT_STATUS:
            action = _BY_RESULT_STATUS[obx.get(11)]
        else:
            raise DocumentError(
                f"OBX {obx.get(1)}: OBX-11 {obx.get(11) or 'empty'} is no document action "
                "(F, C, D or W)"
            )
        _, _, _, encoding, data = _ed(obx, comp)
        if encoding.upper() != "BASE64":
            raise DocumentError(
                f"OBX {obx.get(1)}: CDA encoding {encoding or 'none'} is not Base64"
            )
        out.append(CarriedData(obx=obx.get(1), action=action, data=data))
    return tuple(out)


def extract_documents(msg: Message) -> tuple[DocumentRecord, ...]:
    """Every CDA of the message, decoded; raises DocumentError when one cannot be decoded."""
    flags = _masking(msg)
    txa = msg.segment("TXA")
    number = _document_id(txa, 12) if txa is not None else ""
    parent = _document_id(txa, 13) if txa is not None else ""
    return tuple(
        DocumentRecord(
            content=_decoded(carried),
            action=carried.action,
            document_number=number,
            parent_number=parent,
            obx=carried.obx,
            **flags,
        )
        for carried in carried_data(msg)
    )


def _document_id(txa: Segment, field: int) -> str:
    """A TXA document number (EI) as the store keys ids: ``root^extension`` when EI-3 holds
    the root and EI-1 the extension, else EI-1 (an OID on its own)."""
    entity, root = txa.get(field, 1), txa.get(field, 3)
    if root and entity and root != entity:
        return f"{root}^{entity}"
    return entity or root


#: OBX value types that are results. A message carrying a CDA otherwise holds only its
#: metadata (coded Y/N flags, attachments such as the mail body): results beside it would
#: be lost, so such a message is refused.
_RESULT_TYPES = frozenset({"NM", "SN", "NA", "ST", "TX", "FT", "DT", "TM", "TS", "DTM"})


def _refuse_other_results(msg: Message) -> None:
    for obx in msg.all("OBX"):
        if obx.get(2) in _RESULT_TYPES:
            raise DocumentError(
                f"OBX {obx.get(1)}: a message carrying a CDA must carry no other result"
            )


def _is_cda(obx: Segment, comp: str) -> bool:
    """An ED OBX holding XML (OBX-5: source^type^subtype XML^encoding^data), not metadata."""
    return obx.get(2) == "ED" and obx.get(3, 3) != _METADATA and _ed(obx, comp)[2].upper() == "XML"


def _ed(obx: Segment, comp: str) -> list[str]:
    """OBX-5's five ED components, split once (``Segment.get`` splits the field at every
    call, and the data can weigh megabytes); base64 holds no escape sequence to undo."""
    parts = obx.field(5).split(comp, 4)
    return parts + [""] * (5 - len(parts))


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _padded(data: str) -> bytes:
    """OBX-5.5 stripped and padded (some senders drop the final padding); DocumentError for
    a character outside ASCII, which no Base64 holds."""
    data = data.strip()
    data += "=" * (-len(data) % 4)
    try:
        return data.encode("ascii")
    except UnicodeEncodeError:
        raise DocumentError("OBX-5.5 is not valid Base64") from None


def _plain_base64(text: bytes) -> bool:
    """Only the Base64 alphabet and final padding: what strict decoding accepts (checked at
    C speed, without decoding)."""
    body = text.rstrip(b"=")
    return len(text) - len(body) <= 2 and not body.translate(None, _BASE64_ALPHABET)


def _decoded(carried: CarriedData) -> bytes:
    try:
        return _decode_text(_padded(carried.data))
    except DocumentError as exc:
        raise DocumentError(f"OBX {carried.obx}: {exc.reason}") from None


def _decode_text(text: bytes) -> bytes:
    """Decoded leniently (characters outside the alphabet, such as line breaks, are
    skipped): strict decoding measured no faster on plain Base64 (0.61 ms for 180 KB)."""
    try:
        return binascii.a2b_base64(text, strict_mode=False)
    except binascii.Error:
        raise DocumentError("OBX-5.5 is not valid Base64") from None


def _masking(msg: Message) -> dict[str, bool]:
    flags = dict.fromkeys(MASKING.values(), False)
    given = False
    for obx in msg.all("OBX"):
        if obx.get(3, 3) == _METADATA and obx.get(3, 1) in MASKING:
            flags[MASKING[obx.get(3, 1)]] = obx.get(5, 1) == "Y"
            given = True
    return {**flags, "masking_given": given}
