"""Inline SVG bar charts: no JavaScript, no build step, readable on a laptop screen."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from markupsafe import Markup


def bar_chart(labels: Sequence[float], good: Sequence[int], bad: Sequence[int], *,
              title: str, width: int = 640, height: int = 140) -> Markup:
    """Stacked bars (good, then bad in red) per time bucket, with the peak labelled."""
    peak = max((g + b for g, b in zip(good, bad, strict=True)), default=0) or 1
    n = max(1, len(labels))
    slot = (width - 40) / n
    bars = []
    for i, (start, g, b) in enumerate(zip(labels, good, bad, strict=True)):
        x = 36 + i * slot
        when = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M UTC")
        gh, bh = (height - 24) * g / peak, (height - 24) * b / peak
        y = height - 12 - gh
        bars.append(f'<rect class="ok" x="{x:.1f}" y="{y:.1f}" width="{max(1.0, slot - 1):.1f}" '
                    f'height="{gh:.1f}"><title>{when}: {g}</title></rect>')
        if b:
            bars.append(f'<rect class="bad" x="{x:.1f}" y="{y - bh:.1f}" '
                        f'width="{max(1.0, slot - 1):.1f}" height="{bh:.1f}">'
                        f'<title>{when}: {b} failed</title></rect>')
    first, last = (_clock(labels[0]), _clock(labels[-1])) if labels else ("", "")
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><text x="0" y="12" class="axis">{peak}</text>'
        f'<line x1="34" y1="{height - 12}" x2="{width}" y2="{height - 12}" class="axis"/>'
        f'<text x="36" y="{height - 1}" class="axis">{first}</text>'
        f'<text x="{width - 4}" y="{height - 1}" class="axis" text-anchor="end">{last}</text>'
        + "".join(bars) + "</svg>")


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%d %b %H:%M UTC")
