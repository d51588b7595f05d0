"""ACK fields echoed from the sender's header are cut to their HL7 lengths."""

from __future__ import annotations

from engine.hl7v2.ack import AckCode, build_ack, read_header
from engine.hl7v2.reader import Message


def header_with(msh3_to_6: str, control_id: str = "C1", trigger: str = "A04") -> str:
    return f"MSH|^~\\&|{msh3_to_6}|20240306111154||ADT^{trigger}|{control_id}|P|2.5.1.9.9\r"


def test_a_one_megabyte_msh5_makes_an_ack_of_a_few_hundred_bytes() -> None:
    header = read_header(header_with("GAM|CHU|" + "R" * 1_000_000 + "|CHU"))
    ack = build_ack(header, AckCode.AA)
    assert len(ack) < 600
    assert Message(ack).get("MSH-3") == "R" * 20  # HD.1 namespace id: IS(20)


def test_hierarchic_designators_keep_three_components_at_their_lengths() -> None:
    many = "^".join(["N" * 50, "1" * 300, "ISO-LONG", *["x"] * 100_000])
    ack = build_ack(read_header(header_with(f"{many}|CHU|DPI|CHU")), AckCode.AA)
    msh5 = ack.split("\r")[0].split("|")[4]
    assert msh5 == "N" * 20 + "^" + "1" * 199 + "^ISO-LO"


def test_control_id_trigger_and_version_are_cut() -> None:
    header = read_header(header_with("A|B|C|D", control_id="9" * 500, trigger="A04XYZ"))
    ack = build_ack(header, AckCode.AE, text="t")
    msh, msa = ack.split("\r")[:2]
    assert msa.split("|")[2] == "9" * 199
    assert msh.split("|")[8] == "ACK^A04^ACK" and msh.split("|")[11] == "2.5.1"
