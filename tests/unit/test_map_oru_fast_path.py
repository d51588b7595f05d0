"""The result mapping's fast path (``map_oru._observation``, ``_order``, ``map_message``'s one
read of MSH-9) gives what the field-by-field reading it replaced gave, for any OBX, OBR and
MSH-9 text: separators, repetitions, escapes, missing and extra fields included.

The reference functions below are the previous code (``Segment.get`` per field, every value
unescaped through ``part``), kept verbatim as the definition."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import UnsupportedMessageType
from engine.hl7v2.embedded_documents import is_document_message
from engine.hl7v2.reader import Message, Segment
from engine.hl7v2.separators import Separators
from engine.hl7v2.values import parse_ts
from engine.transforms.map_hl7 import SUPPORTED_TYPES, map_message
from engine.transforms.map_oru import (
    NO_ORDER,
    ObservationRecord,
    OrderRecord,
    _observation_escaped,
    extract_observations,
)

MSH = "MSH|^~\\&|LAB|FAC|AIG|GHT|20261203101112||{msh9}|C1|P|2.5"
PID = "PID|||123^^^CHU&1.2.3&ISO^PI||DOE^JOHN^^^^^L||19800101|M"


def reference_order(obr: Segment) -> OrderRecord:
    return OrderRecord(
        placer_number=obr.get(2, 1),
        filler_number=obr.get(3, 1),
        code=obr.get(4, 1),
        code_system=obr.get(4, 3),
        text=obr.get(4, 2),
        observed_ts=obr.get(7, 1),
    )


def reference_observation(text: str, order: OrderRecord, seps: Separators) -> ObservationRecord:
    fields = text.split(seps.field)
    fields += [""] * (15 - len(fields))
    if seps.escape in text:
        return _observation_escaped(fields, order, seps)
    comp, rep = seps.component, seps.repetition
    code = [*fields[3].split(rep, 1)[0].split(comp, 3), "", ""][:3]
    unit = fields[6].split(rep, 1)[0].split(comp, 2)
    flags = fields[8]
    if comp in flags:
        flags = rep.join(r.split(comp, 1)[0] for r in flags.split(rep))
    observed_ts = fields[14].split(comp, 1)[0] or order.observed_ts
    return ObservationRecord(
        order=order,
        set_id=fields[1],
        value_type=fields[2],
        code=code[0],
        code_system=code[2],
        code_text=code[1],
        sub_id=fields[4],
        value=fields[5],
        unit=unit[0] or (unit[1] if len(unit) > 1 else ""),
        reference_range=fields[7],
        abnormal_flags=flags,
        status=fields[11],
        observed_ts=observed_ts,
        observed_at=parse_ts(observed_ts) if observed_ts else None,
    )


def reference_observations(msg: Message) -> list[ObservationRecord]:
    seps = msg.separators
    order = NO_ORDER
    out = []
    for seg in msg.segments:
        if seg.name == "OBX":
            out.append(reference_observation(seg.text, order, seps))
        elif seg.name == "OBR":
            order = reference_order(seg)
        elif seg.name == "ORC":
            order = NO_ORDER
    return out


#: Field text built as HL7 builds it (subcomponents, components, repetitions) from atoms:
#: plain text, timestamps (with offset, precision component, garbage) and, in half of the
#: segments (any escape sends the whole OBX down the general path), escapes valid or not.
_plain = st.sampled_from(
    [
        *("", "A", "12.5", "mmol/L", "LN", "é", '""', "20261203101112", "202612031011+0100"),
        *("2026", "99999999", "1-2", "H", "F", "NM", "ST", "CWE"),
    ]
)
_escape = st.sampled_from(["\\S\\", "\\", "\\T\\", "\\X0D\\", "\\H\\", "\\E\\"])


def _field(atom: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    component = st.lists(atom, min_size=1, max_size=2).map("&".join)
    repetition = st.lists(component, min_size=1, max_size=4).map("^".join)
    return st.lists(repetition, min_size=1, max_size=2).map("~".join)


_any_field = _field(st.one_of(_plain, _escape))


def _segment(name: str) -> st.SearchStrategy[str]:
    plain = st.lists(_field(_plain), max_size=17)
    escaped = st.lists(_any_field, max_size=17)
    return st.one_of(plain, escaped).map(lambda fields: "|".join([name, *fields]))


_body = st.lists(
    st.one_of(_segment("OBX"), _segment("OBR"), st.just("ORC|RE"), _segment("NTE")),
    max_size=8,
)


@settings(max_examples=250, deadline=None)
@given(_body)
def test_observations_are_read_as_the_field_by_field_reading_read_them(body: list[str]) -> None:
    msg = Message("\r".join([MSH.format(msh9="ORU^R01"), PID, *body]))
    assert extract_observations(msg) == reference_observations(msg)


@settings(max_examples=150, deadline=None)
@given(_any_field, _any_field, _any_field)
def test_the_message_type_is_read_once_as_message_type_and_trigger_read_it(
    msh9: str, extra: str, obx5: str
) -> None:
    text = "\r".join(
        [MSH.format(msh9=msh9 + extra), PID, "OBR|1", f"OBX|1|ED|X^Y^LN||{obx5}||||||F"]
    )
    msg = Message(text)
    kind = f"{msg.message_type}^{msg.trigger}"
    try:
        op = map_message(msg)
    except UnsupportedMessageType:
        assert kind not in SUPPORTED_TYPES
        return
    except Exception:  # another error of a supported type: what it is, is tested elsewhere
        assert kind in SUPPORTED_TYPES
        return
    assert kind in SUPPORTED_TYPES
    assert (op.kind == "add_documents") == is_document_message(msg)


def test_the_supported_types_map_as_is_document_message_says() -> None:
    cda = "<ClinicalDocument/>"
    for kind in sorted(SUPPORTED_TYPES):
        for obx5 in ("12", f"^text^XML^Base64^{cda}"):
            text = "\r".join(
                [
                    MSH.format(msh9=kind),
                    PID,
                    "MRG|456^^^CHU&1.2.3&ISO^PI",
                    "PV1|1|I|||||||||||||||||V1^^^CHU",
                    "TXA|1|CR|TX",
                    "OBR|1",
                    f"OBX|1|ED|X^Y^LN||{obx5}||||||F",
                ]
            )
            msg = Message(text)
            try:
                op = map_message(msg)
            except Exception:  # a document that does not decode: not this test's business
                continue
            assert (op.kind == "add_documents") == is_document_message(msg), kind


def test_a_unit_of_one_component_and_a_code_of_many_repetitions_read_as_before() -> None:
    seps = Message(MSH.format(msh9="ORU^R01")).separators
    for text in (
        "OBX|1|NM|A^B^C^D~E^F^G|1|5|^UCUM~mg|1-2|H^x~L^y|||F|||20261203^S",
        "OBX|1|NM|A|1|5|mg^X",
        "OBX|1|NM|2345-7^Glucose^LN||5.1|mmol/L^^UCUM|3.9-5.8|N|||F|||20261203101112",
        "OBX|1|NM||1|5|^",
        "OBX",
        "OBX|1|NM|A^B|1|5|mg|1-2|H~L|||F|||||||||extra",
    ):
        order = reference_order(Segment("OBR|1|P^x|F|C^T^S|||20261203", seps))
        got = extract_observations(Message("\r".join([MSH.format(msh9="ORU^R01"), text])))
        assert got == [reference_observation(text, NO_ORDER, seps)]
        fast = extract_observations(
            Message("\r".join([MSH.format(msh9="ORU^R01"), "OBR|1|P^x|F|C^T^S|||20261203", text]))
        )
        assert fast == [reference_observation(text, order, seps)]
        assert fast[0].order == order
