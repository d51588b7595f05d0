"""``read_header`` reads a header without escape sequences without unescaping each field: it
must read every header exactly as the field-by-field reading (the oracle below, the reading
before the fast path) does, escaped or not, whatever the separators."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.hl7v2.escape import unescape
from engine.hl7v2.msh import Header, read_header
from engine.hl7v2.separators import Separators


def oracle(line: str) -> Header:
    seps = Separators.from_header(line)
    fields = line.split(seps.field)

    def raw(number: int) -> str:
        return fields[number - 1] if number - 1 < len(fields) else ""

    def first(number: int) -> str:
        value = raw(number).split(seps.repetition, 1)[0].split(seps.component, 1)[0]
        return unescape(value, seps).strip()

    def designator(number: int) -> str:
        value = raw(number).split(seps.repetition, 1)[0]
        return "^".join(unescape(c, seps) for c in value.split(seps.component))

    msg_type = raw(9).split(seps.repetition, 1)[0].split(seps.component)
    return Header(
        separators=seps,
        sending_app=designator(3),
        sending_facility=designator(4),
        receiving_app=designator(5),
        receiving_facility=designator(6),
        message_type=unescape(msg_type[0], seps),
        trigger=unescape(msg_type[1], seps) if len(msg_type) > 1 else "",
        control_id=unescape(raw(10), seps),
        processing_id=first(11),
        version=first(12),
        accept_ack_type=first(15).upper(),
        app_ack_type=first(16).upper(),
        charset=first(18),
        version_id=designator(12),
    )


DELIMITERS = "|^~\\&#$*@!%+"


@st.composite
def headers(draw: st.DrawFn) -> str:
    chosen = draw(st.permutations(DELIMITERS).map(lambda p: p[:5]))
    field, comp, rep, esc, sub = chosen
    # Field contents: letters, blanks, the other delimiters, escape sequences.
    escapes = [f"{esc}F{esc}", f"{esc}S{esc}", f"{esc}.br{esc}", f"{esc}X41{esc}", esc]
    pieces = st.sampled_from(["A", "lab", " ", "2.5", "AL", "ne", comp, rep, sub, "^", *escapes])
    values = draw(st.lists(st.lists(pieces, max_size=4).map("".join), min_size=0, max_size=20))
    return "MSH" + field + comp + rep + esc + sub + field + field.join(values)


@settings(max_examples=400, deadline=None)
@given(headers())
def test_fast_path_reads_as_the_oracle(line: str) -> None:
    assert read_header(line + "\rPID|1") == oracle(line)


def test_plain_header_with_other_component_separator() -> None:
    line = "MSH#$*@&#APP$1.2.3$ISO#FAC#R#RF#20240101##ORU$R01#C1#P#2.5$FRA$2.11"
    header = read_header(line)
    assert header == oracle(line)
    assert header.sending_app == "APP^1.2.3^ISO"
    assert header.version_id == "2.5^FRA^2.11"
