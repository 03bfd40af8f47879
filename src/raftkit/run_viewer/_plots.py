"""Inline SVG plots for the run viewer: a histogram of counted values, labelled bars.

Plain SVG strings, no plotting library: the page must open offline, and these two shapes are
all it needs. Every label passes through :func:`~raftkit.html_page.escape_html`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from raftkit.html_page import escape_html

__all__ = ["bar_chart", "histogram", "quantile", "share"]

_e = escape_html


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "—"


def quantile(hist: Counter[int], q: float) -> int:
    """The smallest value with at least ``q`` of the mass at or below it."""
    total = sum(hist.values())
    target, seen = q * total, 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= target:
            return value
    return 0


def histogram(hist: Counter[int], title: str, unit: str) -> str:
    """Bars of a value → count histogram, in at most 30 equal-width bins, median marked."""
    if not hist:
        return f'<div class="plot"><h3>{_e(title)}</h3><p class="muted">no data</p></div>'
    lo, hi = min(hist), max(hist)
    n_bins = min(30, hi - lo + 1)
    width_per_bin = -(-(hi - lo + 1) // n_bins)  # ceiling division
    n_bins = -(-(hi - lo + 1) // width_per_bin)
    bins = [0] * n_bins
    for value, count in hist.items():
        bins[(value - lo) // width_per_bin] += count
    total, top = sum(bins), max(bins)
    left, plot_w, plot_h, pad_top = 48, 420, 140, 22
    width, height = left + plot_w + 16, pad_top + plot_h + 36
    bar_w = plot_w / n_bins
    median = quantile(hist, 0.5)
    parts = [
        f'<svg role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{_e(title)}: histogram of {total:,} values</title>",
    ]
    for i, count in enumerate(bins):
        if not count:
            continue
        h = max(1.0, count / top * plot_h)
        a = lo + i * width_per_bin
        b = a + width_per_bin - 1
        span = f"{a:,}" if a == b else f"{a:,}–{b:,}"
        parts.append(
            f'<rect x="{left + i * bar_w + 1:.1f}" y="{pad_top + plot_h - h:.1f}" '
            f'width="{max(1.0, bar_w - 2):.1f}" height="{h:.1f}" fill="#0969da" opacity="0.8">'
            f"<title>{_e(span)} {_e(unit)}: {count:,}</title></rect>"
        )
    mx = left + ((median - lo) // width_per_bin + 0.5) * bar_w
    right = mx < left + 0.7 * plot_w  # the label goes right of the line unless near the edge
    parts.append(
        f'<path d="M{mx:.1f} {pad_top - 18}V{pad_top + plot_h}" stroke="#cf222e" '
        'stroke-dasharray="4 3" stroke-width="1.5"/>'
        f'<text x="{mx + (4 if right else -4):.1f}" y="{pad_top - 8}" fill="#cf222e" '
        f'text-anchor="{"start" if right else "end"}">median {median:,}</text>'
    )
    base = pad_top + plot_h
    parts.append(
        f'<path d="M{left} {base}H{left + plot_w}M{left} {pad_top}V{base}" stroke="#8c959f"/>'
    )
    parts.append(f'<text x="{left - 6}" y="{pad_top + 10}" text-anchor="end">{top:,}</text>')
    parts.append(f'<text x="{left - 6}" y="{base}" text-anchor="end">0</text>')
    for value, anchor, x in ((lo, "start", left), (hi, "end", left + plot_w)):
        parts.append(f'<text x="{x}" y="{base + 16}" text-anchor="{anchor}">{value:,}</text>')
    parts.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{base + 30}" text-anchor="middle">'
        f"{_e(unit)}</text></svg>"
    )
    mean = sum(v * c for v, c in hist.items()) / total
    stats = (
        f"n {total:,} · mean {mean:,.0f} · median {median:,} · "
        f"90th percentile {quantile(hist, 0.9):,} · max {hi:,}"
    )
    return (
        f'<div class="plot"><h3>{_e(title)}</h3>{"".join(parts)}'
        f'<p class="muted">{_e(stats)}</p></div>'
    )


def bar_chart(rows: Sequence[tuple[str, int]], title: str, *, colors: Sequence[str] = ()) -> str:
    """Horizontal bars of labelled counts, with the count and share beside each."""
    if not rows:
        return f'<div class="plot"><h3>{_e(title)}</h3><p class="muted">none</p></div>'
    total = sum(c for _, c in rows) or 1
    top = max(c for _, c in rows) or 1
    label_w, plot_w, row_h = 190, 260, 24
    width, height = label_w + plot_w + 130, row_h * len(rows) + 8
    parts = [
        f'<svg role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{_e(title)}</title>",
    ]
    for i, (label, count) in enumerate(rows):
        y = 4 + i * row_h
        w = count / top * plot_w
        color = colors[i] if i < len(colors) else "#0969da"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end">{_e(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 1.0):.1f}" height="{row_h - 6}" '
            f'fill="{color}" opacity="0.8"><title>{_e(label)}: {count:,}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 16}">'
            f"{count:,} ({_e(share(count, total))})</text>"
        )
    parts.append("</svg>")
    return f'<div class="plot"><h3>{_e(title)}</h3>{"".join(parts)}</div>'
