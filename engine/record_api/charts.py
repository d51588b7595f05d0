"""Trend charts of lab results as inline SVG, made on the server (no script, no external
asset): a line through the numeric values of one analyte, the reference range shaded."""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 320, 120, 24
_NUMBER = r"[-+]?\d+(?:[.,]\d+)?"
#: A low-high range, bracketed or not, maybe followed by its unit (``9.30-17.00 pg/mL``).
_RANGE = re.compile(rf"^\s*[\[(]?\s*({_NUMBER})\s*(?:-|;|–|to|à)\s*({_NUMBER})\s*[\])]?(?:\s.*)?$")


def reference_range(text: str) -> tuple[float, float] | None:
    """``3.5-5.0``, ``[0.4;4.0]`` or ``0,4 - 4`` as (low, high); None otherwise."""
    found = _RANGE.match(text or "")
    if found is None:
        return None
    low, high = (float(g.replace(",", ".")) for g in found.groups())
    return (low, high) if low <= high else None


def number(text: str) -> float | None:
    try:
        return float((text or "").replace(",", ".").strip())
    except ValueError:
        return None


def trend_svg(series: dict[str, Any]) -> Markup:
    """An SVG of ``series["points"]`` (oldest first); empty when fewer than one number."""
    values = [v for v in (number(p["value"]) for p in series["points"]) if v is not None]
    if not values:
        return Markup("")
    band = reference_range(series.get("reference_range", ""))
    low = min([*values, *(band or ())])
    high = max([*values, *(band or ())])
    span = (high - low) or 1.0

    def y(v: float) -> float:
        return float(round(HEIGHT - PAD - (v - low) / span * (HEIGHT - 2 * PAD), 1))

    step = (WIDTH - 2 * PAD) / max(len(values) - 1, 1)
    start = PAD if len(values) > 1 else WIDTH / 2  # a single value stands in the middle
    points = [(round(start + i * step, 1), y(v)) for i, v in enumerate(values)]
    label = escape(series.get("label") or series.get("code") or "")
    parts = [
        f'<svg class="trend" role="img" aria-label="{label}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{label}</title>",
    ]
    if band is not None:
        top, bottom = y(band[1]), y(band[0])
        parts.append(
            f'<rect class="range" x="{PAD}" y="{top}" width="{WIDTH - 2 * PAD}" '
            f'height="{round(bottom - top, 1)}" fill="#d8f0dc"/>'
        )
    line = " ".join(f"{x},{yy}" for x, yy in points)
    parts.append(f'<polyline points="{line}" fill="none" stroke="#1d4e89" stroke-width="2"/>')
    for (x, yy), v in zip(points, values, strict=True):
        outside = band is not None and not band[0] <= v <= band[1]
        colour = "#b3261e" if outside else "#1d4e89"
        parts.append(
            f'<circle cx="{x}" cy="{yy}" r="3.5" fill="{colour}"><title>{v:g}</title></circle>'
        )
    parts.append(
        f'<text x="2" y="{PAD - 8}" font-size="10">{high:g}</text>'
        f'<text x="2" y="{HEIGHT - 6}" font-size="10">{low:g}</text></svg>'
    )
    return Markup("".join(parts))
