"""HL7 v2 escape sequences (HL7 v2.5 §2.7)."""

from __future__ import annotations

from engine.hl7v2.separators import Separators


def escape(text: str, seps: Separators) -> str:
    """Escape delimiter characters so that ``text`` is safe inside one component."""
    key = (seps.field, seps.component, seps.repetition, seps.escape, seps.subcomponent)
    table = _TABLES.get(key)
    if table is None:
        table = _TABLES[key] = _escape_table(seps)
    return text.translate(table)


#: Translation tables by delimiters (a tuple of str: hashed and compared in C, on the ACK path).
_TABLES: dict[tuple[str, str, str, str, str], dict[int, str]] = {}


def _escape_table(seps: Separators) -> dict[int, str]:
    e = seps.escape
    return {
        ord(e): f"{e}E{e}",
        ord(seps.field): f"{e}F{e}",
        ord(seps.component): f"{e}S{e}",
        ord(seps.subcomponent): f"{e}T{e}",
        ord(seps.repetition): f"{e}R{e}",
        # Every control character (CR, LF, and MLLP's 0x0B and 0x1C among them) as hex: an
        # unescaped value echoed into an ACK must never break its segments or its framing.
        **{c: f"{e}X{c:02X}{e}" for c in range(0x20)},
        0x7F: f"{e}X7F{e}",
    }


def unescape(text: str, seps: Separators) -> str:
    """Replace escape sequences with the characters they stand for.

    Unknown or malformed sequences are kept as they are: a reader must not lose data.
    """
    e = seps.escape
    if e not in text:
        return text
    simple = {
        "F": seps.field,
        "S": seps.component,
        "T": seps.subcomponent,
        "R": seps.repetition,
        "E": e,
        ".br": "\n",
    }
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        end = text.find(e, i + 1) if ch == e else -1
        if end == -1:
            out.append(ch)
            i += 1
            continue
        seq = text[i + 1 : end]
        if seq in simple:
            out.append(simple[seq])
        elif seq[:1] == "X" and len(seq) > 1 and len(seq) % 2 == 1:
            try:
                out.append(bytes.fromhex(seq[1:]).decode("latin-1"))
            except ValueError:
                out.append(text[i : end + 1])
        else:
            out.append(text[i : end + 1])
        i = end + 1
    return "".join(out)
