"""A sparkline as inline SVG, made on the server (no script, no chart library)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 120.0, 28.0


def sparkline(values: Sequence[int], label: str) -> Markup:
    """A line of ``values`` scaled to the box (stretched to its width), its area shaded; the
    label, total and peak are what a screen reader says."""
    peak = max(values, default=0)
    count = len(values)
    step = WIDTH / max(count - 1, 1)
    points = [
        (round(i * step, 1), round(HEIGHT - 2 - (v / peak if peak else 0) * (HEIGHT - 4), 1))
        for i, v in enumerate(values)
    ]
    line = " ".join(f"{x},{y}" for x, y in points)
    area = f"0,{HEIGHT} {line} {WIDTH},{HEIGHT}" if points else ""
    title = escape(f"{label}: {sum(values)} in the hour, at most {peak} a minute")
    return Markup(
        f'<svg class="spark" viewBox="0 0 {WIDTH:g} {HEIGHT:g}" preserveAspectRatio="none" '
        f'role="img" aria-label="{title}"><title>{title}</title>'
        f'<polygon class="area" points="{area}"/>'
        f'<polyline class="line" points="{line}"/></svg>'
    )
