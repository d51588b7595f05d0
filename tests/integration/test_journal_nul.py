"""A NUL character in a header field (PostgreSQL text cannot hold one), or a field longer than
its journal column, neither blocks the journal commit nor fails the other messages of the
batch."""

from __future__ import annotations

from tests.integration.identity_harness import adt, pid
from tests.integration.inprocess import ADT_CHANNEL, ENGINE_HEAD, InProcessEngine


def test_a_nul_in_msh_10_is_dropped_from_the_journal_columns(store_url: str) -> None:
    engine = InProcessEngine(ENGINE_HEAD + ADT_CHANNEL, url=store_url)
    try:
        codes = engine.send(adt("A28", pid("IPP1"), "A\x00B"), adt("A28", pid("IPP2"), "C2"))
        rows = engine.rows("SELECT control_id, state FROM journal_messages ORDER BY id")
        raw = engine.rows("SELECT raw FROM journal_messages ORDER BY id")[0][0]
    finally:
        engine.stop()
    assert codes == ["AA", "AA"]
    assert rows == [("AB", "delivered"), ("C2", "delivered")]
    assert b"A\x00B" in bytes(raw)  # the original bytes are kept as received


def test_header_fields_longer_than_their_columns_are_cut(store_url: str) -> None:
    engine = InProcessEngine(ENGINE_HEAD + ADT_CHANNEL, url=store_url)
    long_id = "7" * 300
    message = adt("A28", pid("IPP1"), long_id).replace("|GAM|", f"|{'G' * 300}|", 1)
    try:
        codes = engine.send(message, adt("A28", pid("IPP2"), "C2"))
        rows = engine.rows("SELECT control_id, sender_app, state FROM journal_messages ORDER BY id")
    finally:
        engine.stop()
    assert codes == ["AA", "AA"]
    assert rows[0] == ("7" * 255, "G" * 255, "delivered")
    assert rows[1][0] == "C2"
