"""The operator's side-by-side view reads identities back from the journal."""

from __future__ import annotations

from sqlalchemy import Engine

from engine.errors import ParseError
from engine.intake.rules import MessageRules
from engine.journal.journal import Journal
from engine.pipeline.identify.compare import message_identity


def journal(db: Engine, payload: bytes) -> int:
    intake = MessageRules("hospital", ("ADT^*",), "UNICODE UTF-8")
    with db.connect() as conn:
        rejected = intake.prepare_rejected(payload, "test", ParseError("kept"))
        [appended] = Journal(db).append(conn, [rejected.row])
    return appended.id


def test_a_journaled_pid_is_read_back_as_an_identity(db: Engine) -> None:
    ident = journal(
        db,
        b"MSH|^~\\&|GAM|CHU|DPI|CHU|20240306||ADT^A28|1|P|2.5\r"
        b"PID|1||IPP1^^^CHU^PI||DURAND^JULIE^^^^^L||19800101|F",
    )
    with db.connect() as conn:
        identity = message_identity(conn, ident)
    assert identity is not None
    assert (identity.traits.birth_name, identity.local_ids[0].value) == ("DURAND", "IPP1")


def test_a_journaled_payload_that_is_not_hl7_has_no_identity_instead_of_failing(
    db: Engine,
) -> None:
    ident = journal(db, b"<ClinicalDocument/>")
    with db.connect() as conn:
        assert message_identity(conn, ident) is None
        assert message_identity(conn, ident + 1) is None  # no such message
