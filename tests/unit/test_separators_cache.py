"""``Separators.from_header`` keeps the delimiters it has read, by MSH-1 and MSH-2: a header
read again gets the same answer, and invalid delimiters are refused every time."""

from __future__ import annotations

import pytest

from engine.errors import ParseError
from engine.hl7v2 import separators as module
from engine.hl7v2.separators import Separators


def test_same_delimiters_read_once_and_equal() -> None:
    first = Separators.from_header("MSH#$*@&#APP")
    assert first == Separators("#", "$", "*", "@", "&")
    assert Separators.from_header("MSH#$*@&#OTHER") is first
    assert Separators.from_header("BHS#$*@&#") is first  # the same five characters


@pytest.mark.parametrize("header", ["MSH|^~\\^|A", "MSH|^~A&|A", "MSH|^~\\\r|A", "MSH|"])
def test_invalid_delimiters_are_refused_every_time(header: str) -> None:
    for _ in range(2):
        with pytest.raises(ParseError):
            Separators.from_header(header)
    assert header[3:8] not in module._KNOWN


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "_KNOWN", {})
    monkeypatch.setattr(module, "_KNOWN_MAX", 2)
    for header in ("MSH|^~\\&|", "MSH#^~\\&#", "MSH@^~\\&@"):
        Separators.from_header(header)
    assert len(module._KNOWN) == 2
    assert Separators.from_header("MSH@^~\\&@").field == "@"  # read, just not kept
