"""Structured fuzz inputs: the real sample messages and documents, mutated the ways senders
and attackers break them (byte flips, truncations, separator swaps, stray MLLP and line-break
bytes, ``MSH`` alone, odd encodings, huge fields), plus plain random bytes.

Samples are ordered by size, so that Hypothesis shrinks a failure toward the smallest one.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from hypothesis import strategies as st

from tests.sample_files import CDA_COPIES, CDA_SHARED, COPIES, SHARED

#: Bytes worth inserting anywhere: MLLP block characters, line breaks, a BOM, delimiters,
#: escape sequences, invalid UTF-8, a NUL, a second header.
SPECIAL = (
    b"\x0b",
    b"\x1c",
    b"\x1c\r",
    b"\r",
    b"\n",
    b"\r\n",
    b"\x00",
    b"\xef\xbb\xbf",
    b"|",
    b"^",
    b"~",
    b"\\",
    b"&",
    b"\\X0D\\",
    b"\\X\\",
    b"\\.br\\",
    b"\xff",
    b"\xc3",
    b"\xe9",
    b"MSH",
    b"MSH\r",
    b"MSH|^~\\&|",
    b"FHS|^~\\&\r",
    b"BHS|^~\\&\r",
)

#: MSH-18 values: known, unknown, non-ASCII-compatible, garbled.
CHARSET_NAMES = (
    b"",
    b"ASCII",
    b"8859/1",
    b"8859/15",
    b"UNICODE UTF-8",
    b"UNICODE",
    b"UTF-8",
    b"UTF-16",
    b"ISO IR87",
    b"unicode utf-8",
    b"8859/1~UNICODE UTF-8",
    b"\xff\xfe",
)

#: Handcrafted heads: the first-segment shapes that broke intake once (issue 10, defect 3).
EDGE_PAYLOADS = (
    b"",
    b"MSH",
    b"MSH\r",
    b"MSH\rPID|1||X",
    b"MSH\r\rEVN|A01",
    b"MSH\nPID|1",
    b"MSH|",
    b"MSH|^~\\&",
    b"MSH|^~\\&|",
    b"MSH|||||",
    b"MSH|^^^^|A",
    b"MSHa^~\\&|A",
    b"\xef\xbb\xbfMSH",
    b"\r\n \tMSH\r",
    b"FHS",
    b"FHS\rMSH",
    b"BHS|^~\\&\rMSH\r",
    b"<",
    b"<?xml version='1.0'?>",
)


def _read_all(*folders: Path, suffix: str) -> tuple[bytes, ...]:
    found: dict[bytes, None] = {}
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.rglob(f"*{suffix}")):
                found.setdefault(path.read_bytes())
    return tuple(sorted(found, key=len))


@cache
def hl7_samples() -> tuple[bytes, ...]:
    """Every HL7 v2 sample, from tests/samples and the shared corpus, smallest first."""
    return _read_all(COPIES, SHARED, suffix=".hl7")


@cache
def cda_samples() -> tuple[bytes, ...]:
    """Every CI-SIS CDA sample, from tests/samples and the shared corpus, smallest first."""
    return _read_all(CDA_COPIES, CDA_SHARED, suffix=".xml")


#: What a hostile or broken document may hold besides: a DTD, entities, XInclude, deep nesting,
#: a second root, a removed or emptied id, another encoding declared.
XML_SPECIAL = (
    b'<!DOCTYPE x [<!ENTITY e "ee">]>',
    b'<!ENTITY x SYSTEM "file:///etc/hostname">',
    b"&e;",
    b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/hostname"/>',
    b"<a>" * 300,
    b"</ClinicalDocument><ClinicalDocument>",
    b"<id/>",
    b' root=""',
    b"<?xml version='1.0' encoding='ISO-8859-1'?>",
    b"<![CDATA[",
    b"]]>",
)


@st.composite
def _mutate_once(draw: st.DrawFn, data: bytes, specials: tuple[bytes, ...]) -> bytes:
    pos = draw(st.integers(0, len(data)))
    kind = draw(
        st.sampled_from(
            ["flip", "truncate", "cut", "insert", "swap", "breaks", "msh", "charset", "huge"]
        )
    )
    if kind == "flip" and data:
        at = min(pos, len(data) - 1)
        value = draw(st.integers(0, 255))
        return data[:at] + bytes([value]) + data[at + 1 :]
    if kind == "truncate":
        return data[:pos]
    if kind == "cut":
        end = draw(st.integers(pos, min(len(data), pos + 64)))
        return data[:pos] + data[end:]
    if kind == "insert":
        return data[:pos] + draw(st.sampled_from(specials)) + data[pos:]
    if kind == "swap":  # one delimiter (or a segment break) written as another, everywhere
        old, new = draw(st.permutations(b"|^~\\&\r\n "))[:2]
        return data.replace(bytes([old]), bytes([new]))
    if kind == "breaks":
        return data.replace(b"\r", draw(st.sampled_from([b"\n", b"\r\n", b"\n\r", b"\r\r"])))
    if kind == "msh":  # the first segment reduced to its name
        rest = data.split(b"\r", 1)[1] if b"\r" in data else b""
        return b"MSH" + draw(st.sampled_from([b"\r", b"\n", b"\r\r"])) + rest
    if kind == "charset":
        return _set_msh18(data, draw(st.sampled_from(CHARSET_NAMES)))
    if kind == "huge":
        size = draw(st.sampled_from([300, 5_000, 70_000, 1_000_000]))
        filler = draw(st.sampled_from([b"A", b"^", b"\\", b"\xe9", b"|"]))
        return data[:pos] + filler * size + data[pos:]
    return data


def _set_msh18(data: bytes, value: bytes) -> bytes:
    head, sep, rest = data.partition(b"\r")
    fields = head.split(b"|")
    fields += [b""] * max(0, 18 - len(fields))
    fields[17] = value
    return b"|".join(fields) + sep + rest


def _reencode(data: bytes, codec: str) -> bytes:
    return data.decode("latin-1").encode(codec, errors="replace")


@st.composite
def mutated(
    draw: st.DrawFn, samples: tuple[bytes, ...], specials: tuple[bytes, ...] = SPECIAL
) -> bytes:
    """One sample with up to 4 mutations, sometimes re-encoded or prefixed."""
    data = draw(st.sampled_from(samples))
    # Mostly one mutation or none: a message still accepted reaches the deeper checks.
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 3, 4]))):
        data = draw(_mutate_once(data, specials))
    wrap = draw(st.sampled_from(["none"] * 6 + ["bom", "blank", "utf-16", "utf-8"]))
    if wrap == "bom":
        data = b"\xef\xbb\xbf" + data
    elif wrap == "blank":
        data = b"\r\n \t" + data
    elif wrap in ("utf-16", "utf-8"):
        data = _reencode(data, wrap)
    return data


def hl7_payloads() -> st.SearchStrategy[bytes]:
    """What an MLLP frame may hold: mutated samples mostly, edge heads, random bytes."""
    samples = mutated(hl7_samples())
    return st.one_of(
        samples,
        samples,  # one_of draws its branches evenly: mutated samples half the time
        samples,
        st.sampled_from(EDGE_PAYLOADS),
        st.binary(max_size=512),
        st.builds(
            lambda head, tail: head + tail, st.sampled_from(EDGE_PAYLOADS), st.binary(max_size=64)
        ),
    )


def cda_payloads() -> st.SearchStrategy[bytes]:
    """What an HTTP body or a dropped file may hold: mutated documents, HL7, random bytes."""
    return st.one_of(
        mutated(cda_samples(), SPECIAL + XML_SPECIAL),
        mutated(cda_samples(), SPECIAL + XML_SPECIAL),
        st.sampled_from(EDGE_PAYLOADS),
        st.binary(max_size=512),
    )


def hl7_texts() -> st.SearchStrategy[str]:
    """Message text as the reader gets it (decoded): mutated samples, and arbitrary text."""
    return st.one_of(
        hl7_payloads().map(lambda b: b.decode("latin-1")),
        st.text(alphabet=st.sampled_from("MSH|^~\\&\r\n PID0123AZé\x0b\x1c\x00"), max_size=200),
        st.text(max_size=200),
    )


#: Characters a sender may declare as delimiters (any that ``Separators.from_header`` takes).
DELIMITER_CHARS = st.characters(
    # Letters, digits and control or invisible characters (a <FS> could not be framed).
    exclude_categories=[
        *("Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "No"),
        *("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"),
    ],
)


def separators() -> st.SearchStrategy[str]:
    """MSH-1 and MSH-2 as five distinct delimiter characters (``|^~\\&`` most often)."""
    return st.one_of(
        st.just("|^~\\&"),
        st.lists(DELIMITER_CHARS, min_size=5, max_size=5, unique=True).map("".join),
    )
