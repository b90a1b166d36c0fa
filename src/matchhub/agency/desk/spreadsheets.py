"""The lists as XLSX, for staff who work in Excel: made from the CSV list when first asked
for, in the asker's language (headers, right-to-left sheet for Arabic), and kept.

XlsxWriter in constant-memory mode writes a row at a time, so a list of a million rows needs no
more memory than one of ten. A sheet holds 1,048,576 rows; a longer list continues on the next
sheet, with the header repeated.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import xlsxwriter

from matchhub.agency.desk import i18n

ROWS_PER_SHEET = 1_048_575

HEADERS = {
    "beneficiary_id": ("رقم المستفيد", "Beneficiary ID"),
    "household_id": ("رقم الأسرة (الاستمارة)", "Household ID"),
    "name": ("الاسم", "Name"),
    "governorate": ("المحافظة", "Governorate"),
    "flags": ("رموز المؤشرات", "Flag codes"),
    "indication_ar": ("المؤشرات (للتحقق)", "Indications (Arabic)"),
    "indication_en": ("المؤشرات بالإنكليزية", "Indications (to verify)"),
    "sources": ("الجهات", "Sources"),
    "as_of": ("تاريخ بيانات الجهة", "Partner data as of"),
    "members_on_roster": ("أفراد الأسرة في السجل", "Members on the roster"),
    "members_flagged": ("أفراد لديهم مؤشرات", "Members flagged"),
}


def to_xlsx(source: Path, target: Path, language: str) -> Path:
    """`source` (a list CSV) as an XLSX workbook at `target`, made once."""
    if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    partial = target.with_suffix(".partial")
    workbook = xlsxwriter.Workbook(
        str(partial), {"constant_memory": True, "strings_to_numbers": False}
    )
    bold = workbook.add_format({"bold": True, "bg_color": "#E8EEF4"})
    with source.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        header = next(reader)
        labels = [HEADERS.get(name, (name, name))[0 if language == "ar" else 1] for name in header]
        sheet, row = None, ROWS_PER_SHEET
        sheets = 0
        for cells in reader:
            if row >= ROWS_PER_SHEET:
                sheets += 1
                title = i18n.t(
                    "match.households" if header[0] == "household_id" else "match.beneficiaries",
                    language,
                )
                sheet = workbook.add_worksheet(f"{title} {sheets}"[:31])
                if language == "ar":
                    sheet.right_to_left()
                sheet.freeze_panes(1, 0)
                sheet.set_column(0, len(labels) - 1, 22)
                sheet.write_row(0, 0, labels, bold)
                row = 0
            assert sheet is not None  # noqa: S101 (made on the first row)
            row += 1
            sheet.write_row(row, 0, cells)
        if sheet is None:
            sheet = workbook.add_worksheet()
            sheet.write_row(0, 0, labels, bold)
    workbook.close()
    os.chmod(partial, 0o600)
    partial.replace(target)
    return target
