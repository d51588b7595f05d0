"""Reading HL7 v2 data types into plain Python values: timestamps, CX, XPN, XAD, XTN, PL.

Pure functions on :class:`~engine.hl7v2.reader.Segment`; none raises on odd input: a value that
cannot be read gives ``""`` or ``None``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from engine.hl7v2.escape import unescape
from engine.hl7v2.reader import Segment
from engine.hl7v2.separators import Separators

#: Time zone of an HL7 timestamp that carries no offset. HL7 says "the sender's local time";
#: the engine serves French feeds, so that is Paris time (with its summer time).
DEFAULT_TZ: tzinfo = ZoneInfo("Europe/Paris")

#: HL7 "null": the field is explicitly emptied (e.g. the INS slot of an A47).
HL7_NULL = '""'

_TS = re.compile(
    r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6})\d*)?(?:([+-])(\d{2})(\d{2}))?\Z"
)


@lru_cache(maxsize=4096)  # pure; results repeat within and across messages
def parse_ts(text: str, default_tz: tzinfo = DEFAULT_TZ) -> datetime | None:
    """An aware datetime from ``YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]``, or None; never raises.

    Missing parts take their lowest value; a timestamp without an offset is read in
    ``default_tz``. Anything after a component separator (TS-2, degree of precision) is ignored
    by the callers, which pass TS-1.
    """
    m = _TS.match(text.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, sign, oh, om = m.groups()
    if sign is None:
        tz = default_tz
    else:
        offset = timedelta(hours=int(oh), minutes=int(om))
        if offset >= timedelta(hours=24):
            return None
        tz = timezone(-offset if sign == "-" else offset)
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((frac or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError:
        return None


def parse_date(text: str) -> date | None:
    """The calendar date of a TS as written (no time zone shift); None below day precision."""
    digits = text.strip()[:8]
    if len(digits) < 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def has_value(text: str) -> bool:
    """Not empty and not the HL7 null ``""``."""
    return bool(text) and text != HL7_NULL


def part(raw: str, seps: Separators, component: int, subcomponent: int = 0) -> str:
    """Unescaped component (and subcomponent) of one raw repetition; ``""`` when absent.

    Faster than ``Segment.get`` when several parts of one repetition are read.
    """
    items = raw.split(seps.component, component)
    if component > len(items):
        return ""
    value = items[component - 1]
    if subcomponent:
        subs = value.split(seps.subcomponent, subcomponent)
        value = subs[subcomponent - 1] if subcomponent <= len(subs) else ""
    return unescape(value, seps) if seps.escape in value else value


def render_address(raw: str, seps: Separators) -> str:
    """A one-line postal address from an XAD: street, other designation, city, state, zip and
    country joined with ", "; the street's SAD subcomponents are joined with a space."""
    street = " ".join(p for p in (part(raw, seps, 1, s).strip() for s in (1, 2, 3)) if p)
    parts = [street, *(part(raw, seps, c).strip() for c in range(2, 7))]
    return ", ".join(p for p in parts if p)


def render_phone(raw: str, seps: Separators) -> str:
    """An XTN's number: XTN-1, else XTN-12 (unformatted), else +country area local."""
    number = part(raw, seps, 1) or part(raw, seps, 12)
    if number:
        return number
    country, area, local = (part(raw, seps, c) for c in (5, 6, 7))
    if not local:
        return ""
    return " ".join(p for p in (f"+{country}" if country else "", area, local) if p)


def render_location(seg: Segment, field: int) -> str:
    """A PL as "point of care / room / bed / facility" (empty parts left out)."""
    parts = (seg.get(field, c, 1) for c in (1, 2, 3, 4))
    return " / ".join(p for p in parts if p)
