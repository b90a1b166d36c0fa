"""The auditor's report as a PDF, made by the desk itself (fpdf2, shaping with HarfBuzz).

Arabic is shaped and laid out right to left by HarfBuzz (uharfbuzz) inside fpdf2, so letters
join and numbers stay in order; the font is a system font the desk already relies on for its
pages (DejaVu Sans, which has Arabic and Latin, with Noto Naskh or Noto Sans Arabic preferred
for Arabic where installed), embedded in the file: nothing is fetched. The PDF holds what the
printable page holds, and no token, ID or key: subjects are shown by the first characters of
their keyed digest, staff by their pseudonyms.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fpdf import FPDF

from matchhub.agency.desk import i18n

if TYPE_CHECKING:
    from matchhub.agency.desk.auditing import Report

FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts/opentype"))
LATIN = ("dejavu/DejaVuSans.ttf",)
LATIN_BOLD = ("dejavu/DejaVuSans-Bold.ttf",)
ARABIC = (
    "noto/NotoNaskhArabic-Regular.ttf",
    "noto/NotoSansArabic-Regular.ttf",
    "dejavu/DejaVuSans.ttf",
)
ARABIC_BOLD = (
    "noto/NotoNaskhArabic-Bold.ttf",
    "noto/NotoSansArabic-Bold.ttf",
    "dejavu/DejaVuSans-Bold.ttf",
)
ROWS = 25
"""Rows of each list in the PDF; the page holds them all."""


class FontMissing(RuntimeError):
    """No font with Arabic is installed (Debian: fonts-dejavu-core or fonts-noto-core)."""


def _font(candidates: Sequence[str]) -> Path:
    for folder in FONT_DIRS:
        for name in candidates:
            if (folder / name).is_file():
                return folder / name
    raise FontMissing(f"none of {', '.join(candidates)} is installed")


class _Document(FPDF):
    def __init__(self, lang: str) -> None:
        super().__init__(format="A4")
        self.lang = lang
        self.rtl = lang == "ar"
        self.add_font("body", "", str(_font(ARABIC if self.rtl else LATIN)))
        self.add_font("body", "B", str(_font(ARABIC_BOLD if self.rtl else LATIN_BOLD)))
        self.add_font("latin", "", str(_font(LATIN)))
        self.set_fallback_fonts(["latin"])
        self.set_text_shaping(True, direction="rtl" if self.rtl else "ltr")
        self.set_auto_page_break(auto=True, margin=15)
        self.add_page()

    def t(self, key: str) -> str:
        return i18n.t(key, self.lang)

    def say(self, text: str, size: float = 10, *, bold: bool = False) -> None:
        self.set_font("body", "B" if bold else "", size)
        self.multi_cell(0, size * 0.6, text, align="R" if self.rtl else "L")
        self.ln(1)

    def heading(self, key: str) -> None:
        self.ln(3)
        self.say(self.t(key), 13, bold=True)

    def rows(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        if not rows:
            self.say(self.t("audit.none"))
            return
        self.set_font("body", "", 9)
        order = (lambda r: list(reversed(r))) if self.rtl else list
        with self.table(
            text_align="RIGHT" if self.rtl else "LEFT", line_height=5.5, first_row_as_headings=True
        ) as table:
            table.row(order(header))
            for row in rows[:ROWS]:
                table.row(order(row))
        if len(rows) > ROWS:
            self.say(f"… {self.number(len(rows) - ROWS)} {self.t('audit.more_rows')}", 8)

    def number(self, value: float) -> str:
        return i18n.number(value, self.lang)


def slots_label(slots: Sequence[tuple[int, int]], lang: str, most: int = 6) -> str:
    """(ISO weekday, hour) slots as "Friday 22:00, Saturday 09:00, ..." in ``lang``."""
    shown = [
        f"{i18n.t(f'audit.weekday.{weekday}', lang)} {i18n.digits(f'{hour:02d}:00', lang)}"
        for weekday, hour in slots[:most]
    ]
    return ("، " if lang == "ar" else ", ").join(shown) + (" …" if len(slots) > most else "")


def report_pdf(report: Report, lang: str) -> bytes:
    """The report of ``report``'s period, in ``lang``: what /audit/report shows."""
    pdf = _Document(lang)
    n = pdf.number
    f = report.findings
    pdf.say(pdf.t("audit.report.title"), 16, bold=True)
    pdf.say(
        f"{pdf.t('audit.period')}: {i18n.day(report.period.first, lang)} – "
        f"{i18n.day(report.period.last, lang)}"
    )
    pdf.say(f"{pdf.t('audit.report.made')}: {i18n.moment(report.made_at, lang)}")
    view = report.witness
    if view.alarmed:
        pdf.set_text_color(180, 0, 0)
        pdf.say(pdf.t("audit.witness.alarm"), 11, bold=True)
        for alarm in view.alarms:
            pdf.say(f"{pdf.t('audit.reason.' + alarm.reason)}: {alarm.message}", 9)
        pdf.set_text_color(0, 0, 0)
    elif view.size is not None:
        pdf.say(
            f"{pdf.t('audit.witness.verified')} {n(view.size)} {pdf.t('audit.witness.entries_at')} "
            f"{i18n.moment(view.checked_at, lang)}",
            11,
            bold=True,
        )
    pdf.say(
        f"{pdf.t('audit.entries_count')}: {n(f.entries)} · {pdf.t('audit.lookups_count')}: "
        f"{n(f.lookups)} · {pdf.t('audit.refused_count')}: {n(sum(f.refused.values()))}"
    )
    pdf.heading("audit.report.per_agency")
    pdf.rows(
        [pdf.t("audit.agency"), pdf.t("audit.count")],
        [(a, n(c)) for a, c in f.volume.per_agency.items()],
    )
    pdf.heading("audit.report.per_purpose")
    pdf.rows(
        [pdf.t("audit.purpose"), pdf.t("audit.count")],
        [(p, n(c)) for p, c in f.purposes.items()],
    )
    pdf.heading("audit.report.refused")
    pdf.rows(
        [pdf.t("audit.error"), pdf.t("audit.count")],
        [(e, n(c)) for e, c in f.refused.items()],
    )
    pdf.heading("audit.heavy.title")
    pdf.rows(
        [
            pdf.t("audit.end_user"),
            pdf.t("audit.agency"),
            pdf.t("audit.people"),
            pdf.t("audit.heavy.median"),
        ],
        [(h.end_user, h.agency, n(h.people), n(h.peer_median)) for h in f.heavy],
    )
    pdf.heading("audit.hours.title")
    pdf.rows(
        [
            pdf.t("audit.end_user"),
            pdf.t("audit.agency"),
            pdf.t("audit.lookups_count"),
            pdf.t("audit.hours.when"),
        ],
        [(o.end_user, o.agency, n(o.lookups), slots_label(o.slots, lang)) for o in f.off_hours],
    )
    pdf.heading("audit.widely.title")
    pdf.rows(
        [pdf.t("audit.subject"), pdf.t("audit.widely.staff"), pdf.t("audit.lookups_count")],
        [(w.subject[:12], n(len(w.staff)), n(w.lookups)) for w in f.widely],
    )
    if view.note:
        pdf.heading("audit.report.checkpoint")
        pdf.set_font("latin", "", 7)
        pdf.multi_cell(0, 3.5, view.note, align="L")
    return bytes(pdf.output())
