"""Character sets: MSH-18 read from bytes, strict decoding, clear reasons."""

from __future__ import annotations

import pytest

from engine.errors import EncodingError
from engine.hl7v2.charset import (
    UTF8_BOM,
    codec_name,
    decode,
    encode,
    encode_ack,
    header_charset,
)
from tests.sample_files import SAMPLES


def message(charset: str, name: str = "DUPRÉ^Élodie") -> str:
    return (
        f"MSH|^~\\&|GAM|CHU|DPI|CHU|20240306111154||ADT^A01^ADT_A01|3975|P|2.5|||||FRA|{charset}\r"
        f"PID|1||000003^^^CHU||{name}\r"
    )


def test_utf8_message_is_decoded_as_declared() -> None:
    text, codec = decode(message("UNICODE UTF-8").encode("utf-8"), "latin-1")
    assert codec == "utf-8"
    assert "DUPRÉ^Élodie" in text


def test_8859_1_message_is_decoded_as_latin_1() -> None:
    text, codec = decode(message("8859/1").encode("latin-1"), "utf-8")
    assert codec == "latin-1"
    assert "DUPRÉ^Élodie" in text


def test_8859_15_reads_byte_a4_as_the_euro_sign() -> None:
    raw = message("8859/15", name="PRIX^10€").encode("iso8859-15")
    assert b"10\xa4" in raw
    text, codec = decode(raw, "utf-8")
    assert codec == "iso8859-15"
    assert "PRIX^10€" in text


def test_ascii_message_with_a_high_byte_is_rejected_with_its_offset() -> None:
    raw = message("ASCII").encode("latin-1")
    offset = raw.index(b"\xc9")
    with pytest.raises(EncodingError) as info:
        decode(raw, "utf-8")
    assert f"offset {offset}" in info.value.reason
    assert "ASCII" in info.value.reason
    assert info.value.code == "invalid_encoding"


def test_plain_ascii_message_decodes_under_ascii() -> None:
    text, codec = decode(message("ASCII", name="DUPRE^ELODIE").encode("ascii"), "utf-8")
    assert codec == "ascii"
    assert text.startswith("MSH|")


def test_utf8_bom_is_dropped_and_means_utf8_without_msh_18() -> None:
    raw = UTF8_BOM + message("").encode("utf-8")
    text, codec = decode(raw, "latin-1")
    assert codec == "utf-8"
    assert text.startswith("MSH|")
    assert "DUPRÉ" in text


def test_msh_18_is_read_after_a_bom() -> None:
    assert header_charset(UTF8_BOM + message("8859/15").encode("iso8859-15")) == "8859/15"


def test_default_applies_when_msh_18_is_empty() -> None:
    text, codec = decode(message("").encode("latin-1"), "8859/1")
    assert codec == "latin-1"
    assert "DUPRÉ" in text


def test_default_may_be_a_python_codec_name() -> None:
    _, codec = decode(message("").encode("utf-8"), "UTF8")
    assert codec == "utf-8"


def test_cp1252_byte_under_utf8_default_is_rejected_with_the_offset() -> None:
    raw = (SAMPLES / "python-hl7" / "cp1252_byte.hl7").read_bytes()
    with pytest.raises(EncodingError) as info:
        decode(raw, "utf-8")
    assert "not valid UTF-8" in info.value.reason
    offset = raw.index(b"\x96")
    assert f"offset {offset}" in info.value.reason
    assert "0x96" in info.value.reason


def test_unknown_msh_18_is_rejected_naming_the_value() -> None:
    with pytest.raises(EncodingError) as info:
        decode(message("KLINGON").encode("utf-8"), "utf-8")
    assert "'KLINGON'" in info.value.reason
    assert "MSH-18" in info.value.reason


def test_msh_18_may_not_name_an_arbitrary_python_codec() -> None:
    with pytest.raises(EncodingError):
        decode(message("rot13").encode("utf-8"), "utf-8")


def test_unknown_default_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="default character set"):
        decode(message("").encode("utf-8"), "no-such-codec")


def test_msh_18_is_matched_without_regard_to_case() -> None:
    _, codec = decode(message("unicode utf-8").encode("utf-8"), "ascii")
    assert codec == "utf-8"


def test_first_repetition_of_msh_18_is_the_message_charset() -> None:
    raw = message("8859/1~ISO IR87").encode("latin-1")
    assert header_charset(raw) == "8859/1"
    assert decode(raw, "utf-8")[1] == "latin-1"


@pytest.mark.parametrize("newline", [b"\r", b"\n", b"\r\n"])
def test_msh_18_is_read_whatever_the_segment_separator(newline: bytes) -> None:
    raw = message("8859/15").encode("iso8859-15").replace(b"\r", newline)
    assert header_charset(raw) == "8859/15"


def test_msh_18_is_absent_from_a_short_msh() -> None:
    assert header_charset(b"MSH|^~\\&|A|B\rPID|1") == ""
    assert header_charset(b"") == ""
    assert header_charset(b"PID|1") == ""


def test_msh_18_of_a_batch_comes_from_its_first_message() -> None:
    raw = (SAMPLES / "python-hl7" / "sample_batch.hl7").read_bytes()
    assert raw.startswith(b"BHS")
    assert header_charset(raw) == "ASCII"


def test_non_standard_field_separator_is_honoured() -> None:
    raw = message("8859/1").replace("|", "$").encode("latin-1")
    assert header_charset(raw) == "8859/1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("8859/15", "iso8859-15"), ("latin-1", "iso8859-1"), ("utf-16", None), ("base64", None)],
)
def test_codec_name_accepts_only_ascii_compatible_text_codecs(
    value: str, expected: str | None
) -> None:
    assert codec_name(value) == expected


def test_encode_refuses_to_alter_data() -> None:
    with pytest.raises(EncodingError, match="ASCII"):
        encode("Élodie", "ascii")
    assert encode("Élodie", "latin-1") == b"\xc9lodie"


def test_ack_encoding_replaces_what_the_charset_lacks() -> None:
    assert encode_ack("MSA|AE|1|donnée", "ascii") == b"MSA|AE|1|donn?e"
    assert encode_ack("MSA|AE|1|donnée", "utf-8") == "MSA|AE|1|donnée".encode()
