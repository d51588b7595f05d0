"""The answer property shared by the intake targets: every prepared payload gets an ACK for
whatever the journal said (the row accepted or refused, or the journal unavailable), framed,
that reads back with a known MSA-1 and MSA-2 naming the payload's control id."""

from __future__ import annotations

from hypothesis import event

from engine.adapters.mllp_framing import frame
from engine.errors import EngineError, StoreUnavailable
from engine.hl7v2.ack import AckCode
from engine.hl7v2.reader import Message
from engine.intake.prepared import Prepared
from engine.intake.rules import MessageRules
from engine.journal.records import Appended
from tests.fuzz.test_fuzz_ack import CONTROL_ID_MAX, echoes

ACK_CODES = {c.value for c in AckCode}


def check_prepared(prepared: Prepared) -> None:
    """An accepted row says AA; a refused one is a dead letter with the error's code."""
    row = prepared.row
    event(f"intake: {row.error_code or 'accepted'}")  # --hypothesis-show-statistics
    if prepared.error is None:
        assert row.ack_code == AckCode.AA
    else:
        assert isinstance(prepared.error, EngineError)
        assert row.ack_code == prepared.error.ack_code
        assert row.error_code == prepared.error.code
        assert row.state == "dead_lettered"


def _expected(prepared: Prepared, code: str) -> AckCode:
    original = AckCode(code)
    if not prepared.enhanced or prepared.application_only:  # application codes
        return original
    return {AckCode.AA: AckCode.CA, AckCode.AE: AckCode.CE, AckCode.AR: AckCode.CR}[original]


def check_answers(intake: MessageRules, prepared: Prepared) -> int:
    """Check the ACK for the journal's answer and the one for a journal failure; returns how
    many ACKs were checked (two: one per outcome)."""
    row = prepared.row
    stored = Appended(1, False, str(row.ack_code), row.error_code, row.error_reason)
    outcomes: list[tuple[Appended | None, EngineError | None, str]] = [
        (stored, None, str(row.ack_code)),
        (None, StoreUnavailable("the journal is unavailable"), "AE"),
    ]
    for appended, failure, code in outcomes:
        ack = intake.ack(prepared, appended, failure)
        if not prepared.answer:  # an acknowledgment received: never answered
            assert ack is None
            assert prepared.header.message_type == "ACK"
            continue
        assert ack is not None, "an MLLP sender must always be answered (always_ack)"
        check_ack(ack, prepared, _expected(prepared, code))
    return len(outcomes)


def check_ack(ack: bytes, prepared: Prepared, code: AckCode) -> None:
    frame(ack)  # raises if a block character got through
    msg = Message(ack.decode(prepared.codec))
    msa = msg.segment("MSA")
    assert msa is not None
    assert msa.get(1) in ACK_CODES
    assert msa.get(1) == code.value
    assert echoes(msa.get(2), prepared.header.control_id, CONTROL_ID_MAX)
