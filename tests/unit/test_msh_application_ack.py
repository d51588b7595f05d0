"""``asks_application_ack``: MSH-16 read from a journaled payload's bytes, to tell whether a
sender waits for the pipeline's outcome (the pipeline then syncs its commit)."""

from __future__ import annotations

import pytest

from engine.hl7v2.msh import asks_application_ack


def msh(msh16: str, separator: str = "|", components: str = "^~\\&") -> bytes:
    fields = ["MSH", components, "LABO", "LAB", "DPI", "CHU", "20240306111154", "",
              "ORU^R01", "C1", "P", "2.5", "", "", "AL", msh16]  # fmt: skip
    return (separator.join(fields) + "\rPID|1||X^^^CHU^PI\r").encode()


@pytest.mark.parametrize("value", ["AL", "ER", "SU", "al", " AL ", "AL^x"])
def test_asked(value: str) -> None:
    assert asks_application_ack(msh(value))


@pytest.mark.parametrize("value", ["", "NE", "ALX"])
def test_not_asked(value: str) -> None:
    assert not asks_application_ack(msh(value))


def test_short_header_asks_nothing() -> None:
    assert not asks_application_ack(b"MSH|^~\\&|LABO|LAB|DPI|CHU|20240306||ORU^R01|C1|P|2.5\r")


def test_other_separators_and_leading_blanks() -> None:
    assert asks_application_ack(b"\xef\xbb\xbf\r\n" + msh("ER", "#", "$*\\&"))
    assert not asks_application_ack(msh("NE", "#", "$*\\&"))


def test_lf_terminated_header() -> None:
    assert asks_application_ack(msh("AL").replace(b"\r", b"\n"))


def test_document_alone_asks_nothing() -> None:
    assert not asks_application_ack(b"\n  <?xml version='1.0'?><ClinicalDocument/>")


def test_unreadable_header_is_cautious() -> None:
    """A header these bytes cannot show (UTF-16) is taken as asking: the commit is synced."""
    assert asks_application_ack(msh("NE").decode().encode("utf-16-le"))
