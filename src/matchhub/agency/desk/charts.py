"""Bar charts as SVG drawn on the server: no script, no outside library, nothing to load.

Horizontal bars suit long Arabic labels; in Arabic the bars grow from the right, as the text
reads. The SVG is put inline in the page and escaped like any other text.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from matchhub.agency.desk import i18n

ROW = 30
LABEL = 290
BAR = 280
LABEL_CHARACTERS = 36
"""Longer labels are cut with an ellipsis (the full label is the bar's tooltip and is in the
table beside every chart)."""
VALUE = 110
WIDTH = LABEL + BAR + VALUE


def bars(items: Sequence[tuple[str, int]], language: str, *, title: str = "") -> str:
    """One bar per (label, value), longest first as given; the values written beside them."""
    if not items:
        return ""
    top = max(value for _, value in items) or 1
    rtl = language == "ar"
    height = ROW * len(items) + 10
    parts = [
        # direction="ltr": the coordinates below place Arabic labels at the right themselves;
        # an inherited right-to-left direction would flip every text anchor a second time.
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" direction="ltr" '
        f'width="{WIDTH}" height="{height}" aria-label="{escape(title)}" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    for row, (label, value) in enumerate(items):
        y = 5 + row * ROW
        length = round(BAR * value / top)
        if rtl:
            label_x, anchor, bar_x = WIDTH - 4, "end", WIDTH - LABEL - length
            value_x, value_anchor = WIDTH - LABEL - length - 6, "end"
        else:
            label_x, anchor, bar_x = 4, "start", LABEL
            value_x, value_anchor = LABEL + length + 6, "start"
        shown = label if len(label) <= LABEL_CHARACTERS else label[: LABEL_CHARACTERS - 1] + "…"
        parts.append(
            f'<text x="{label_x}" y="{y + 18}" text-anchor="{anchor}" class="chart-label">'
            f"<title>{escape(label)}</title>{escape(shown)}</text>"
            f'<rect x="{bar_x}" y="{y + 4}" width="{max(length, 1)}" height="{ROW - 10}" '
            'class="chart-bar" rx="3"/>'
            f'<text x="{value_x}" y="{y + 18}" text-anchor="{value_anchor}" '
            f'class="chart-value">{escape(i18n.number(value, language))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
