"""``datetime.strptime`` for the numeric formats of HL7 dates, compiled once per format.

``datetime.strptime`` takes a lock, checks the locale and looks its regular expression up on
every call: about a fifth of a whole transform's cost on the bench ORU. A format made only of
``%Y %y %m %d %H %M %S %f %z %%`` and literal text is compiled here into the regular expression
the standard library builds for it (``_strptime.TimeRE``, same patterns, same IGNORECASE, same
whitespace rule) and read with the same rules, so that it accepts and refuses exactly the
values ``strptime`` does (tests/unit/test_transform_fast_path.py compares them). Any other format
(names of months or days, ``%j``, ``%p``, no year...) is left to ``strptime``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

Reader = Callable[[str], datetime]

#: The patterns of ``_strptime.TimeRE`` (CPython 3.11) for the directives read here.
_DIRECTIVES = {
    "d": r"(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])",
    "f": r"(?P<f>[0-9]{1,6})",
    "H": r"(?P<H>2[0-3]|[0-1]\d|\d)",
    "m": r"(?P<m>1[0-2]|0[1-9]|[1-9])",
    "M": r"(?P<M>[0-5]\d|\d)",
    "S": r"(?P<S>6[0-1]|[0-5]\d|\d)",
    "y": r"(?P<y>\d\d)",
    "Y": r"(?P<Y>\d\d\d\d)",
    "z": r"(?P<z>[+-]\d\d:?[0-5]\d(:?[0-5]\d(\.\d{1,6})?)?|(?-i:Z))",
    "%": "%",
}
_REGEX_CHARS = re.compile(r"([\\.^$*+?\(\){}\[\]|])")
_WHITESPACE = re.compile(r"\s+")


def date_reader(fmt: str) -> Reader:
    """A function reading a value with ``fmt`` as ``datetime.strptime(value, fmt)`` does
    (``ValueError`` for a value that does not fit)."""
    pattern = _pattern(fmt)
    if pattern is None:
        return lambda value: datetime.strptime(value, fmt)
    try:
        regex = re.compile(pattern, re.IGNORECASE)
    except re.error:  # a directive given twice: strptime says why
        return lambda value: datetime.strptime(value, fmt)
    match, keys = regex.match, frozenset(regex.groupindex)
    y2, y4, m, d, hh, mm, ss, ff, zz = (k in keys for k in "yYmdHMSfz")

    def read(value: str) -> datetime:
        found = match(value)
        if found is None or found.end() != len(value):
            raise ValueError("the value does not match the format")
        g = found.groupdict()
        year = int(g["Y"]) if y4 else _century(int(g["y"]))
        return datetime(
            year,
            int(g["m"]) if m else 1,
            int(g["d"]) if d else 1,
            int(g["H"]) if hh else 0,
            int(g["M"]) if mm else 0,
            int(g["S"]) if ss else 0,
            int(g["f"].ljust(6, "0")) if ff else 0,
            _offset(g["z"]) if zz else None,
        )

    assert y2 or y4
    return read


def _pattern(fmt: str) -> str | None:
    """``TimeRE.pattern(fmt)``, or None when ``fmt`` has a directive not read here or no
    year."""
    fmt = _WHITESPACE.sub(r"\\s+", _REGEX_CHARS.sub(r"\\\1", fmt))
    out: list[str] = []
    seen: set[str] = set()
    while "%" in fmt:
        at = fmt.index("%")
        if at + 1 >= len(fmt) or fmt[at + 1] not in _DIRECTIVES:
            return None
        out.append(fmt[:at])
        out.append(_DIRECTIVES[fmt[at + 1]])
        seen.add(fmt[at + 1])
        fmt = fmt[at + 2 :]
    out.append(fmt)
    if len(seen & {"Y", "y"}) != 1:
        return None  # strptime's rules for no year (1900, 29 February) or two: left to it
    return "".join(out)


def _century(year: int) -> int:
    """``%y``: 00-68 is 2000-2068, 69-99 is 1969-1999 (POSIX, as strptime)."""
    return year + (2000 if year <= 68 else 1900)


#: UTC offsets as read, by their text (few distinct ones; bounded all the same).
_OFFSETS: dict[str, timezone] = {}


def _offset(text: str) -> timezone:
    """The offset ``%z`` reads (``Z``, ``+0100``, ``-03:30``...), as strptime reads it."""
    found = _OFFSETS.get(text)
    if found is None:
        found = _read_offset(text)
        if len(_OFFSETS) < 1024:
            _OFFSETS[text] = found
    return found


def _read_offset(z: str) -> timezone:
    if z == "Z":
        return timezone(timedelta(0))
    if z[3] == ":":
        z = z[:3] + z[4:]
        if len(z) > 5:
            if z[5] != ":":
                raise ValueError("inconsistent use of : in a UTC offset")
            z = z[:5] + z[6:]
    seconds = int(z[1:3]) * 3600 + int(z[3:5]) * 60 + int(z[5:7] or 0)
    micro = int(z[8:].ljust(6, "0"))
    if z.startswith("-"):
        seconds, micro = -seconds, -micro
    return timezone(timedelta(seconds=seconds, microseconds=micro))
